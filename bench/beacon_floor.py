"""The beacon's floor: the least any beacon must do that also stores every event within 2 s,
written by hand on sqlite3 and redis-py with nothing of Magnet.

The web side is the bare JSON endpoint (`bench.baselines.beacon`: the same checks, the same
204) plus a hand-over: each accepted event is appended to a list in the process, and a thread
moves the list to Redis with one RPUSH every 50 ms, as Magnet's does. A drainer process (this
module run as a script) pops what waits in batches of up to 1,000 and stores each event as one
row with one `executemany` INSERT per batch: no visitor, visit or roll-up rows, no delivery to
plugins. The bare endpoint stores nothing, so the floor's distance to it is what storing costs
on the same CPUs; Magnet, which stores more per event, cannot pass the floor.

    python -m bench.beacon_floor          # the drainer (BENCH_SQLITE, BENCH_REDIS_URL)
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask, request

from bench.baselines import BEACON_TYPES, _connect, database_path

LIST = "bench:floor:beacon"
LINGER = 0.05
BATCH = 1000
TABLE = ("CREATE TABLE IF NOT EXISTS activities (id INTEGER PRIMARY KEY, type TEXT, url TEXT, "
         "referrer TEXT, language TEXT, received_at REAL)")


def _redis() -> Any:
    import redis
    return redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379"))


class HandOver:
    """Accepted events, moved to Redis by a thread at most `LINGER` seconds later."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[bytes] = []
        self.thread: threading.Thread | None = None
        self.redis = _redis()

    def add(self, event: bytes) -> None:
        with self.lock:
            self.events.append(event)
            if self.thread is None:  # started in each worker, after gunicorn forked
                self.thread = threading.Thread(target=self._run, daemon=True)
                self.thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(LINGER)
            with self.lock:
                events, self.events = self.events, []
            if events:
                self.redis.rpush(LIST, *events)


def beacon_floor_app() -> Flask:
    hand_over = HandOver()
    app = Flask("baseline_beacon_floor")

    @app.get("/")
    def floor_ready() -> str:
        return "ready"

    @app.post("/t")
    def floor_beacon() -> Any:
        if request.content_length is None or request.content_length > 4096:
            return "", 413
        body = request.get_data()
        try:
            event = json.loads(body)
        except ValueError:
            return "", 400
        if not isinstance(event, dict) or event.get("t") not in BEACON_TYPES \
                or not isinstance(event.get("u"), str) or not isinstance(event.get("k"), str):
            return "", 400
        hand_over.add(body)
        return "", 204
    return app


def stored(path: str) -> int:
    connection = _connect(path)
    try:
        connection.execute(TABLE)
        return int(connection.execute("SELECT count(*) FROM activities").fetchone()[0])
    finally:
        connection.close()


def drain() -> None:
    """Store what the web processes handed over, a batch per transaction, until SIGTERM."""
    connection = _connect(database_path())
    connection.execute(TABLE)
    client = _redis()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    while True:
        batch = client.lpop(LIST, BATCH) or []
        if not batch:
            if stopping.is_set():
                return
            time.sleep(LINGER)
            continue
        rows = []
        now = time.time()
        for raw in batch:
            event = json.loads(raw)
            rows.append((event["t"], event["u"], event.get("r") or "", event.get("l") or "",
                         now))
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany("INSERT INTO activities (type, url, referrer, language, "
                               "received_at) VALUES (?, ?, ?, ?, ?)", rows)
        connection.execute("COMMIT")


if __name__ == "__main__":
    drain()
