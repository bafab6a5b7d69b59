"""The `magnet` command: serve (the whole site in one go), plugins new, plugins list."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from engine.cli import main
from tests.serve_support import alive, children_of, clean_env, free_port, start_serve, wait_for


@pytest.mark.slow
def test_serve_runs_web_worker_and_redis_then_stops_them_all(tmp_path):
    instance, port = tmp_path / "instance", free_port()
    serve = start_serve(instance, port)
    try:
        health = wait_for(f"http://127.0.0.1:{port}/healthz",
                          lambda r: r.ok and r.json()["workers"] >= 1, serve)
        assert health.json() == {"database": "ok", "redis": "ok", "workers": 1, "status": "ok"}
        redis_pid = int((instance / "redis.pid").read_text())
        started = children_of(serve.pid)
        assert redis_pid in started and len(started) == 3  # Redis, gunicorn, one worker
    finally:
        os.killpg(serve.pid, signal.SIGINT)  # Ctrl-C
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
    serve = start_serve(instance, port)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", lambda r: r.ok and r.json()["workers"] >= 1,
                 serve)
        secret_before = (instance / "secret_key").read_text()
    finally:
        os.killpg(serve.pid, signal.SIGINT)
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


def test_magnet_help_shows_magnet_commands_with_help_on_every_option(app):
    runner = app.test_cli_runner()
    shown = runner.invoke(main, ["--help"]).output
    listed = {line.split()[0] for line in shown.split("Commands:")[1].splitlines() if line.strip()}
    assert {"serve", "worker", "plugins", "themes", "jobs", "db", "users"} <= listed
    assert not listed & {"run", "routes", "shell"}
    assert "--safe-mode" in shown
    assert not [flag for flag in ("--app", "--env-file", "--debug") if flag in shown]

    def options(command, path):
        for param in command.params:
            if param.param_type_name == "option" and not param.hidden:
                yield path, param.opts, param.help
        for name, sub in getattr(command, "commands", {}).items():
            yield from options(sub, [*path, name])
    missing = [(p, o) for tree in (main, app.cli) for p, o, h in options(tree, ["magnet"])
               if not h]
    assert missing == []
    assert "Port to listen on." in runner.invoke(main, ["serve", "--help"]).output
