"""The hand-over from a web process to Redis: accepted events wait here at most 50 ms.

The beacon hands each event to its process's `Pending` list (a microsecond). A thread moves what
waits there to the Redis list of `buffer` with one RPUSH at most `LINGER` seconds later, as a
Kafka producer's linger does: a round trip to Redis per event would cost more than the rest of
the hit. The events go as JSON arrays of up to `buffer.GROUP`, an item of the list each. A
graceful stop (SIGTERM, as deploys, gunicorn and `magnet serve` send) hands over what waits
before the process exits; a process killed outright loses at most its last `LINGER`
seconds of page views and clicks, never a form submission (forms store theirs in the database
before they answer). When Redis is unreachable the thread stores the events in the database
itself; when both fail it keeps them (up to `MAX_HELD`) and tries again. An RPUSH that times out
may still have reached Redis (a frozen server runs it when it wakes), so the fallback can store
events the drain meets again later: their ids make the second store a no-op (`ingest`).
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import weakref
from typing import Any

import redis
from flask import Flask, current_app

from engine.jobs import connection
from plugins.tracking import buffer

log = logging.getLogger("magnet.tracking")

LINGER = 0.05  # seconds an accepted event may wait in the web process (MAGNET_TRACKING_LINGER)
FLUSH_AT = 500  # hand over at once when this many are waiting
MAX_HELD = 50_000  # kept in memory while neither Redis nor the database takes them
# One encoder for every hand-over (`json.dumps` with options builds a new one per call).
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
IDLE_ROUNDS = 100  # rounds with nothing to hand over before the thread stops (5 s)


class Pending:
    """Events this process accepted and has not handed to Redis yet, and the thread that does."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.linger = float(app.config.get("TRACKING_LINGER", LINGER))
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()  # guards `events`
        self.handing = threading.Lock()  # one hand-over at a time
        self.due = threading.Event()
        self.running = False  # the thread starts with the first event, in each web worker
        os.register_at_fork(after_in_child=self._forked)
        EVERY_PENDING.add(self)

    def _forked(self) -> None:
        """A forked process has no thread and must not hand on its parent's events again."""
        self.events, self.running = [], False
        self.lock, self.handing = threading.Lock(), threading.Lock()

    def add(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.events.append(event)
            waiting = len(self.events)
            start, self.running = not self.running, True
        if start:
            threading.Thread(target=self._run, name="tracking-flush", daemon=True).start()
        if waiting >= FLUSH_AT:
            self.due.set()

    def _run(self) -> None:
        """Hand over every `linger` seconds; stop after `IDLE_ROUNDS` rounds with nothing to
        hand over (the next event starts a new thread), so a quiet process keeps no thread."""
        idle = 0
        while True:
            self.due.wait(self.linger)
            self.due.clear()
            try:
                idle = 0 if self.flush() else idle + 1
            except Exception:  # keep the thread alive whatever happens
                log.exception("tracking: flushing accepted events failed")
            with self.lock:
                if idle >= IDLE_ROUNDS and not self.events:
                    self.running = False
                    return

    def flush(self) -> int:
        """Hand every waiting event to Redis (or the database); returns how many it handed
        over. One hand-over at a time: whoever flushes returns only once what was waiting when
        it called has arrived."""
        with self.handing:
            with self.lock:
                events, self.events = self.events, []
            if not events:
                return 0
            if self._hand_over(events):
                return len(events)
            with self.lock:
                self.events[:0] = events[-MAX_HELD:]
                del self.events[MAX_HELD:]
            return 0

    def _hand_over(self, events: list[dict[str, Any]]) -> bool:
        with self.app.app_context():
            try:
                connection().rpush(buffer.QUEUE_KEY, *(
                    _ENCODE(events[start:start + buffer.GROUP])
                    for start in range(0, len(events), buffer.GROUP)))
                return True
            except (redis.RedisError, OSError):
                pass
            try:
                buffer.store_batch(events)
                return True
            except Exception:
                log.exception("tracking: Redis and the database both refused %d event(s); "
                              "kept for the next try", len(events))
                return False


EVERY_PENDING: weakref.WeakSet[Pending] = weakref.WeakSet()


@atexit.register
def flush_all() -> None:
    """Hand over what every app of this process holds, at exit (a graceful stop); each app's
    `on_shutdown` does the same for its own."""
    for pending in list(EVERY_PENDING):
        pending.flush()


def pending_here() -> Pending:
    """This app's `Pending` (one per app in each process)."""
    found = current_app.extensions.get("tracking.pending")
    if found is None:
        found = current_app.extensions.setdefault(
            "tracking.pending", Pending(current_app._get_current_object()))  # type: ignore[attr-defined]
    return found


def push(event: dict[str, Any]) -> None:
    """Accept an event: it reaches Redis within `LINGER` seconds."""
    pending_here().add(event)
