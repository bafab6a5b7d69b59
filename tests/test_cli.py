"""The `magnet` command: serve (the whole site in one go), plugins new, plugins list."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from engine.cli import main


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(instance: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MAGNET_", "REDIS_URL", "DATABASE_URL"))}
    return {**env, "MAGNET_INSTANCE_PATH": str(instance), **extra}


def wait_for(url: str, predicate, process=None, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}:\n"
                                 f"{process.communicate()[0]}")
        try:
            last = requests.get(url, timeout=2)
            if predicate(last):
                return last
        except requests.RequestException:  # not up yet, or busy booting
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} never became ready; last answer: {last and last.text}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and " Z " not in Path(f"/proc/{pid}/stat").read_text()


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


@pytest.mark.slow
def test_serve_runs_web_worker_and_redis_then_stops_them_all(tmp_path):
    instance, port = tmp_path / "instance", free_port()
    serve = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--port", str(port)],
                             env=clean_env(instance), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        health = wait_for(f"http://127.0.0.1:{port}/healthz",
                          lambda r: r.ok and r.json()["workers"] >= 1, serve)
        assert health.json() == {"database": "ok", "redis": "ok", "workers": 1, "status": "ok"}
        redis_pid = int((instance / "redis.pid").read_text())
        started = children_of(serve.pid)
        assert redis_pid in started and len(started) == 3  # Redis, gunicorn, one worker
    finally:
        serve.send_signal(signal.SIGINT)  # Ctrl-C
        output = serve.communicate(timeout=60)[0]
    assert f"Magnet is running at http://127.0.0.1:{port}/" in output
    assert "Magnet stopped." in output
    time.sleep(0.5)
    assert not alive(redis_pid), "the embedded Redis outlived serve"
    assert not [pid for pid in started if alive(pid)], "a child outlived serve"
    assert (instance / "magnet.db").exists() and (instance / "secret_key").exists()


@pytest.mark.slow
def test_serve_reuses_a_redis_left_running_and_keeps_data(tmp_path):
    from engine.jobs.embedded import EmbeddedRedis
    instance, port = tmp_path / "instance", free_port()
    leftover = EmbeddedRedis(instance)
    leftover.start()
    leftover.process = None  # as if its parent had died: nobody will stop it but serve's owner
    secret_before = None
    serve = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--port", str(port)],
                             env=clean_env(instance), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", lambda r: r.ok and r.json()["workers"] >= 1,
                 serve)
        secret_before = (instance / "secret_key").read_text()
    finally:
        serve.send_signal(signal.SIGINT)
        serve.communicate(timeout=60)
        pid = int((instance / "redis.pid").read_text())
        assert alive(pid)  # serve did not start it, so it does not stop it
        os.kill(pid, signal.SIGTERM)
    assert (instance / "secret_key").read_text() == secret_before


@pytest.mark.slow
def test_plugins_new_scaffolds_a_plugin_whose_test_passes(tmp_path):
    folder = tmp_path / "myplugins"
    folder.mkdir()
    env = clean_env(tmp_path / "instance", MAGNET_PLUGINS_PATH=str(folder))
    made = subprocess.run([sys.executable, "-m", "engine.cli", "plugins", "new", "hello_bar"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert (folder / "hello_bar" / "__init__.py").exists()
    listed = subprocess.run([sys.executable, "-m", "engine.cli", "plugins", "list"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert "hello_bar" in listed.stdout and "disabled" in listed.stdout
    tested = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "engine.testing",
                             str(folder / "hello_bar")],
                            env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "2 passed" in tested.stdout


def test_plugins_new_refuses_bad_names(app):
    result = app.test_cli_runner().invoke(main, ["plugins", "new", "Bad-Name"])
    assert result.exit_code != 0 and "lower-case" in result.output
