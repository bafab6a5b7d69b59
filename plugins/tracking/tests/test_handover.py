"""The hand-over from the web process to Redis: timed, and on a graceful stop of gunicorn."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from engine.db import db
from engine.jobs import connection
from engine.jobs.embedded import EmbeddedRedis
from plugins.tracking import buffer, handover
from plugins.tracking.models import DailyTotals
from plugins.tracking.tests.helpers import CHROME, drain, events, page_token, send

ROOT = Path(__file__).resolve().parents[3]


def queued(app) -> int:
    with app.app_context():
        return buffer.pending()


def test_accepted_events_reach_redis_within_the_linger_time(app, client):
    started = time.monotonic()
    for number in range(5):
        assert send(client, app, url=f"http://localhost/{number}").status_code == 204
    while queued(app) < 5 and time.monotonic() - started < 5:
        time.sleep(0.01)
    assert queued(app) == 5
    assert time.monotonic() - started < 1  # 50 ms of linger, plus the test's own pace


def test_the_hand_over_thread_stops_when_idle_and_starts_again(app, client, monkeypatch):
    from plugins.tracking import handover
    monkeypatch.setattr(handover, "IDLE_ROUNDS", 2)
    send(client, app, url="http://localhost/one")
    with app.app_context():
        pending = handover.pending_here()
    deadline = time.monotonic() + 5
    while pending.running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pending.running and queued(app) == 1
    send(client, app, url="http://localhost/two")
    assert pending.running
    while queued(app) < 2 and time.monotonic() < deadline + 5:
        time.sleep(0.02)
    assert queued(app) == 2


def test_hand_overs_go_as_groups_and_drain_in_bounded_batches(app, client, monkeypatch):
    """Each hand-over is one list item per `GROUP` events; a drain takes items until it holds
    a batch (reading a window of items at a time) and trims exactly those it stored, and an
    item of the older shape (one event) is still one event."""
    monkeypatch.setattr(buffer, "GROUP", 3)
    monkeypatch.setattr(buffer, "WINDOW", 2)
    monkeypatch.setattr(handover, "LINGER", 3600)  # hand over only when flushed below
    with app.app_context():
        handover.pending_here().linger = 3600
    for number in range(7):
        assert send(client, app, url=f"http://localhost/g{number}").status_code == 204
    with app.app_context():
        handover.pending_here().flush()
        conn = connection()
        assert conn.llen(buffer.QUEUE_KEY) == 3  # 3 + 3 + 1
        older = json.loads(conn.lrange(buffer.QUEUE_KEY, -1, -1)[0])[0]
        conn.rpush(buffer.QUEUE_KEY, json.dumps({**older, "id": "f" * 32,
                                                 "u": "http://localhost/older"}))
        assert buffer.pending() == 8
        batches = []
        stored = buffer.store_batch
        monkeypatch.setattr(buffer, "store_batch",
                            lambda events: (batches.append(len(events)), stored(events)))
        assert buffer.drain(batch=4) == 8
        assert conn.llen(buffer.QUEUE_KEY) == 0 and buffer.pending() == 0
    assert batches == [6, 2]  # items until at least 4 events: 3 + 3, then 1 + the older one
    urls = sorted(e.url for e in events(app))
    assert urls == sorted([f"http://localhost/g{n}" for n in range(7)]
                          + ["http://localhost/older"])


@pytest.mark.both_backends
def test_events_handed_to_a_frozen_redis_and_to_the_database_are_stored_once(make_app, tmp_path):
    """Redis frozen (SIGSTOP) during a hand-over: the RPUSH times out on the client side, so
    the database fallback stores the events; the thawed Redis then runs the RPUSH it had
    received, and the drain meets the same events again."""
    server = EmbeddedRedis(tmp_path / "own-redis")
    server.start()
    try:
        app = make_app(REDIS_URL=server.url, TRACKING_LINGER=3600)  # only the test hands over
        app.extensions["magnet.redis"] = redis.Redis.from_url(  # a timeout this test can wait
            server.url, socket_timeout=0.3, socket_connect_timeout=0.3)
        client = app.test_client()
        for path in ("a", "b"):
            assert send(client, app, url=f"http://localhost/{path}").status_code == 204
        with app.app_context():
            connection().ping()  # the connection exists: the frozen server has its bytes
            pid = int(server.pidfile.read_text())
            os.kill(pid, signal.SIGSTOP)
            try:
                assert handover.pending_here().flush() == 2  # into the database
            finally:
                os.kill(pid, signal.SIGCONT)
        assert len(events(app)) == 2
        assert drain(app) == 2  # the timed-out RPUSH did reach Redis
        assert sorted(e.url for e in events(app)) == ["http://localhost/a", "http://localhost/b"]
        with app.app_context():
            assert [d.page_views for d in db.session.scalars(select(DailyTotals))] == [2]
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, body, {"Content-Type": "text/plain",
                                                 "User-Agent": CHROME}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status


def test_a_graceful_stop_of_gunicorn_hands_over_what_its_workers_hold(make_app, redis_url):
    """With a linger of an hour, only the stop itself can deliver the events. gunicorn runs as
    deployed (README, "Deploying"): with gevent workers."""
    app = make_app()
    port = _free_port()
    env = {**os.environ, "MAGNET_INSTANCE_PATH": app.instance_path, "REDIS_URL": redis_url,
           "MAGNET_TRACKING_LINGER": "3600", "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "--workers", "2",
                               "--worker-class", "gevent", "--no-control-socket", "--bind",
                               f"127.0.0.1:{port}", "--log-level", "warning", "wsgi:app"],
                              cwd=ROOT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2).close()
                break
            except OSError:  # not listening yet, or still starting
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        for number in range(40):
            page = f"{base}/p{number}"
            body = json.dumps({"k": page_token(app, page), "t": "page_view", "u": page}).encode()
            assert _post(base + "/t/event", body) == 204
        time.sleep(0.3)
        assert queued(app) == 0  # still held by the web workers
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        assert server.wait(30) == 0
    assert queued(app) == 40
