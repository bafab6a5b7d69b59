"""`magnet serve` (the whole site in one command) and `magnet worker`.

`serve` is the laptop path: it upgrades the database, runs the first-run set-up, starts the
embedded Redis (unless `REDIS_URL` is set), then gunicorn and one worker as child processes,
and stops all of them, Redis included, on Ctrl-C. A deployment runs the same pieces itself:
`gunicorn wsgi:app` and any number of `magnet worker`.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import click
from flask.cli import with_appcontext


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=env)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--web-workers", default=2, show_default=True, type=int)
@click.option("--job-workers", default=1, show_default=True, type=int)
def serve(host: str, port: int, web_workers: int, job_workers: int) -> None:
    """Run the site: web server, a job worker with the scheduler, and the embedded Redis."""
    from engine import create_app, migrate, setup
    from engine.jobs.connection import ensure_embedded, redis_url

    app = create_app()
    migrate.upgrade(app)
    redis_server = ensure_embedded(app)
    env = {**os.environ, "MAGNET_INSTANCE_PATH": app.instance_path, "REDIS_URL": redis_url(app)}
    base_url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    everywhere = host in ("0.0.0.0", "::")  # no address a reader of an email could open
    if not app.config.get("SITE_URL") and not everywhere:
        env["MAGNET_SITE_URL"] = base_url  # links in emails point here (see engine.web.links)
    with app.app_context():
        notes = setup.first_run(app, base_url)
    if everywhere and not app.config.get("SITE_URL"):
        notes.append("Emails with links (invitations, password resets, confirmations) wait until "
                     "SITE_URL is set: MAGNET_SITE_URL=http://<this machine's name>:"
                     f"{port} magnet serve --host {host}")

    children = [_spawn([sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}",
                        "--workers", str(web_workers), "--threads", "4",
                        "--worker-class", "gthread", "--log-level", "warning",
                        "--graceful-timeout", "10", "engine:create_app()"], env)]
    children += [_spawn([sys.executable, "-m", "engine.cli", "worker"], env)
                 for _ in range(job_workers)]
    click.echo(f"\nMagnet is running at {base_url}/  (admin: {base_url}/admin)")
    for note in notes:
        click.echo(note)
    click.echo("Press Ctrl-C to stop.\n")

    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)  # also when started with SIGINT ignored (`serve &`)
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.3)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        if redis_server:
            redis_server.stop()
        click.echo("Magnet stopped.")


@click.command()
@click.option("--queues", default="default,mail,events", show_default=True,
              help="Comma-separated queues, in priority order.")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--processes", default=1, show_default=True, type=int,
              help="Run this many worker processes.")
@with_appcontext
def worker(queues: str, burst: bool, processes: int) -> None:
    """Run a job worker (non-forking; start several for parallelism)."""
    from flask import current_app

    from engine.jobs.connection import client_for, ensure_embedded
    from engine.jobs.worker import run_worker

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if processes > 1:
        args = [sys.executable, "-m", "engine.cli", "worker", "--queues", queues]
        args += ["--burst"] if burst else []
        children = [_spawn(args, dict(os.environ)) for _ in range(processes)]
        try:
            for child in children:
                child.wait()
        except KeyboardInterrupt:
            for child in children:
                child.send_signal(signal.SIGTERM)
        return
    server = ensure_embedded(app)
    try:
        run_worker(app, client_for(app), queues.split(","), burst=burst)
    finally:
        if server:
            server.stop()
