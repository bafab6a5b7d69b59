"""`magnet serve` as a supervisor and the web server as deployed, tested as real processes."""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from engine.cli.supervisor import BACKOFF_MAX, STABLE_AFTER, Backoff
from tests.serve_support import (
    ROOT,
    SlowClients,
    alive,
    answer_times,
    children_of,
    clean_env,
    descendants_of,
    free_port,
    healthy,
    start_serve,
    wait_for,
)


def stop(serve: subprocess.Popen[str], timeout: float = 60) -> tuple[str, float]:
    """Ctrl-C, as a terminal sends it (to the whole foreground group); output and seconds."""
    started = time.monotonic()
    os.killpg(serve.pid, signal.SIGINT)
    output = serve.communicate(timeout=timeout)[0]
    return output, time.monotonic() - started


def child_running(serve: subprocess.Popen[str], words: str, not_pid: int = 0,
                  timeout: float = 0) -> int:
    """The pid of serve's child whose command line has `words` (other than `not_pid`)."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in children_of(serve.pid):
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if words in command and pid != not_pid and alive(pid):
                return pid
        if time.monotonic() >= deadline:
            raise AssertionError(f"serve has no child running {words!r}")
        time.sleep(0.2)


def assert_normal_visitors_served(url: str) -> None:
    times = answer_times(url, count=10, timeout=5)
    assert all(t is not None and t < 2.0 for t in times), f"answer times: {times}"


@pytest.mark.slow
def test_slow_clients_leave_serve_answering_everyone_else(tmp_path):
    port = free_port()
    serve = start_serve(tmp_path / "instance", port)
    try:
        healthy(port, serve)
        with SlowClients(port, count=100):
            time.sleep(1)  # every slow connection has started its request
            assert_normal_visitors_served(f"http://127.0.0.1:{port}/healthz")
    finally:
        stop(serve)


def readme_web_server(port: int) -> list[str]:
    """The web server command of README's "Deploying" section, on a port of the test's."""
    section = Path(ROOT, "README.md").read_text().split("## Deploying", 1)[1]
    line = next(line for line in section.splitlines() if line.startswith("gunicorn "))
    args = shlex.split(line.split("#")[0])
    args[args.index("--bind") + 1] = f"127.0.0.1:{port}"
    return [sys.executable, "-m", *args]


@pytest.mark.slow
def test_slow_clients_leave_the_documented_web_server_answering(make_app, redis_url):
    app = make_app()
    port = free_port()
    env = clean_env(Path(app.instance_path), REDIS_URL=redis_url)
    server = subprocess.Popen(readme_web_server(port), cwd=ROOT, env=env,
                              start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", lambda r: r.status_code < 500, server, 60)
        with SlowClients(port, count=100):
            time.sleep(1)
            assert_normal_visitors_served(f"http://127.0.0.1:{port}/healthz")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        assert server.wait(30) == 0


def test_procfile_and_compose_run_the_documented_web_server():
    documented = readme_web_server(8000)[3:-1]  # its options, without the port and the app
    for name in ("Procfile", "compose.yaml"):
        text = Path(ROOT, name).read_text()
        flags = re.findall(r"--[a-z-]+", text.split("gunicorn", 1)[1].split("\n", 3)[0]
                           if name == "Procfile" else text.split('"gunicorn"', 1)[1])
        assert set(flags) >= {a for a in documented if a.startswith("--")}, name


@pytest.mark.slow
def test_serve_restarts_what_dies_and_stops_quickly_on_ctrl_c(tmp_path):
    from engine import create_app
    from engine.db import write
    from engine.mail import send
    instance, port = tmp_path / "instance", free_port()
    serve = start_serve(instance, port)
    try:
        healthy(port, serve)
        worker = child_running(serve, "engine.cli worker")
        os.kill(worker, signal.SIGKILL)
        child_running(serve, "engine.cli worker", not_pid=worker, timeout=30)  # a new one

        old_redis = int((instance / "redis.pid").read_text())
        assert old_redis in children_of(serve.pid)
        os.kill(old_redis, signal.SIGKILL)
        wait_for(f"http://127.0.0.1:{port}/healthz",
                 lambda r: r.json()["status"] == "ok"
                 and int((instance / "redis.pid").read_text()) != old_redis, serve, 60)
        site = create_app(instance_path=instance)
        with site.app_context(), write():
            send("owner@example.com", "Sent after Redis came back", "<p>Queued work runs.</p>")
        deadline = time.monotonic() + 60
        while not list((instance / "mail").glob("*")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any("Sent after Redis came back" in path.read_text(errors="replace")
                   for path in (instance / "mail").glob("*"))
        everything = descendants_of(serve.pid)
    finally:
        output, seconds = stop(serve)
    assert f"Emails are not sent (MAIL_HOST is not set): each one is written to {instance}" \
           in output
    assert "The job worker stopped (killed by SIGKILL); restarting it in 1 s." in output
    assert "The embedded Redis stopped; restarting it in 1 s." in output
    assert "Magnet stopped." in output and "SIGKILL!" not in output
    # about 4 s on a busy 2-core machine (each process needs a second or so to exit); it took
    # 11 s when every process got the terminal's SIGINT and gunicorn killed its workers
    assert seconds < 10, f"Ctrl-C took {seconds:.1f} s"
    assert not [pid for pid in everything if alive(pid)], "a process outlived serve"


@pytest.mark.slow
def test_serve_killed_outright_takes_every_process_with_it(tmp_path):
    instance, port = tmp_path / "instance", free_port()
    serve = start_serve(instance, port)
    try:
        healthy(port, serve)
        everything = descendants_of(serve.pid)
        assert len(everything) >= 6  # Redis, gunicorn and its 2 workers, worker, scheduler
        second = subprocess.run([sys.executable, "-m", "engine.cli", "serve", "--port",
                                 str(free_port())], env=clean_env(instance), cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        assert f"another `magnet serve` (pid {serve.pid}) is running on {instance}" \
               in second.stderr
    finally:
        serve.kill()
        serve.communicate(timeout=60)
    deadline = time.monotonic() + 20
    while [pid for pid in everything if alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in everything if alive(pid)], "a process outlived serve"
    again = start_serve(instance, port)  # the same port and folder: nothing holds them
    try:
        healthy(port, again)
    finally:
        output, _ = stop(again)
    assert "Magnet stopped." in output


@pytest.mark.slow
def test_a_plugin_created_while_serve_runs_is_served_as_the_readme_shows(tmp_path):
    instance, port = tmp_path / "instance", free_port()
    plugins = tmp_path / "siteplugins"
    plugins.mkdir()
    serve = start_serve(instance, port, MAGNET_PLUGINS_PATH=str(plugins))
    base = f"http://127.0.0.1:{port}"
    try:
        healthy(port, serve)
        assert requests.get(base + "/hello/", timeout=5).status_code == 404
        for words in (["plugins", "new", "hello"], ["plugins", "enable", "hello"]):
            done = subprocess.run([sys.executable, "-m", "engine.cli", *words], cwd=ROOT,
                                  env=clean_env(instance, MAGNET_PLUGINS_PATH=str(plugins)),
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
        wait_for(base + "/hello/", lambda r: r.ok and r.text == "Hello from Hello", serve, 60)
        wait_for(base + "/", lambda r: "Served with Hello" in r.text, serve, 30)
    finally:
        stop(serve)


def test_restarts_back_off_and_start_afresh_once_a_child_stayed_up():
    now = [0.0]
    backoff = Backoff(clock=lambda: now[0])
    backoff.started()
    delays = []
    for _ in range(7):
        delays.append(backoff.next_delay())
        backoff.started()  # restarted, and crashed again at once
    assert delays == [1, 2, 4, 8, 16, BACKOFF_MAX, BACKOFF_MAX]
    now[0] += STABLE_AFTER  # up long enough this time
    assert backoff.next_delay() == 1
