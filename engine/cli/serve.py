"""`magnet serve` (the whole site in one command) and `magnet worker`.

`serve` is the laptop path: it takes the instance folder for itself (one `serve` per folder),
upgrades the database, runs the first-run set-up, starts the embedded Redis (unless `REDIS_URL`
is set), then the web server and the job workers as child processes. It keeps them running
(a child or the Redis that dies is restarted, with back-off) and stops all of them, Redis
included, on Ctrl-C or SIGTERM; killed outright, it takes them down with it
(`engine.cli.supervisor`). A deployment runs the same pieces itself: gunicorn with the flags of
`web_server_args` on `wsgi:app`, and any number of `magnet worker`.
"""
from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask.cli import with_appcontext

from engine.cli.supervisor import RedisWatch, Supervisor

LOCK_FILE = "serve.lock"
STOP_TIMEOUT = 10.0  # seconds a child has to stop before it is killed
WEB_GRACEFUL_TIMEOUT = 5  # gunicorn's: in-flight requests may finish within it


def web_server_args(bind: str, workers: int, app_spec: str = "engine:create_app()") -> list[str]:
    """gunicorn as README's "Deploying" runs it. Its gevent workers read each request in a
    greenlet of their own, so slow clients (headers or bodies trickling in) wait there without
    holding one of a few threads, as gthread workers did: ten slow clients took a small site
    down. A worker serves up to 1,000 connections at once. The control socket stays off: its
    default is one path in the home folder shared by every gunicorn of the user."""
    return [sys.executable, "-m", "gunicorn", "--bind", bind, "--workers", str(workers),
            "--worker-class", "gevent", "--no-control-socket", "--log-level", "warning",
            "--graceful-timeout", str(WEB_GRACEFUL_TIMEOUT), app_spec]


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=env)


def lock_instance(folder: Path) -> int:
    """Hold the instance folder for this `serve` (released however it ends, even by SIGKILL):
    a second `serve` would borrow the first one's Redis and lose it when the first stops."""
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by the children
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = path.read_text().strip() or "?"
        raise click.ClickException(
            f"another `magnet serve` (pid {holder}) is running on {folder}. Stop it first, "
            "or keep this site's data elsewhere: MAGNET_INSTANCE_PATH=/path/to/site "
            "magnet serve") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc})"
            raise click.ClickException(f"{host}:{port} {reason}; choose another with "
                                       "--port (and --host)") from None


def _banner(app: Flask, base_url: str, notes: list[str]) -> list[str]:
    lines = [f"\nMagnet is running at {base_url}/  (admin: {base_url}/admin)"]
    if not app.config.get("MAIL_HOST"):
        lines.append(f"Emails are not sent (MAIL_HOST is not set): each one is written to "
                     f"{Path(app.instance_path) / 'mail'}/ as a file to open in a mail program.")
    return [*lines, *notes, "Press Ctrl-C to stop.\n"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 for every interface.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--web-workers", default=2, show_default=True, type=int,
              help="Web server processes (each serves many connections at once).")
@click.option("--job-workers", default=1, show_default=True, type=int,
              help="Job worker processes; they share the queues and the periodic jobs.")
def serve(host: str, port: int, web_workers: int, job_workers: int) -> None:
    """Run the whole site: web server, job workers and the embedded Redis, kept running until
    Ctrl-C."""
    from engine import create_app, migrate, setup
    from engine.jobs.connection import redis_url
    from engine.jobs.embedded import EmbeddedRedis

    app = create_app()
    instance = Path(app.instance_path)
    lock = lock_instance(instance)
    _check_port_free(host, port)
    migrate.upgrade(app)
    redis_server = None if app.config.get("REDIS_URL") else EmbeddedRedis(instance)
    if redis_server:
        redis_server.start()
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

    supervisor = Supervisor(say=click.echo)
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    supervisor.add("web server", web_server_args(bind, web_workers), env)
    for number in range(1, job_workers + 1):
        supervisor.add(f"job worker {number}" if job_workers > 1 else "job worker",
                       [sys.executable, "-m", "engine.cli", "worker"], env)
    watch = RedisWatch(redis_server, say=click.echo) if redis_server else None

    stopping = threading.Event()

    def stop(*_: Any) -> None:
        stopping.set()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)  # also when started with SIGINT ignored (`serve &`)
    try:
        supervisor.start_all()
        for line in _banner(app, base_url, notes):
            click.echo(line)
        while not stopping.wait(0.3):
            if watch:
                watch.check()
            supervisor.check()
    finally:
        supervisor.stop(STOP_TIMEOUT)
        if redis_server:
            redis_server.stop()  # only if this serve started it
        os.close(lock)
        click.echo("Magnet stopped.")


@click.command()
@click.option("--queues", default="default,events,mail", show_default=True,
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
