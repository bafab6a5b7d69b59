"""The Redis buffer between the web processes and the database.

Web processes append events to a Redis list (`handover`); the periodic drain job reads thousands
at a time and stores them in one transaction. Events leave the list only after their transaction
committed (read with LRANGE, then LTRIM), so a worker killed mid-batch loses nothing: the next
drain meets that batch again, and storing it is idempotent (each event's id, see `ingest`).
One drain runs at a time across all workers, held by a Redis lock with an expiry.
"""
from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

from engine.jobs import connection
from plugins.tracking import ingest

log = logging.getLogger("magnet.tracking")

QUEUE_KEY = "magnet:tracking:events"
LOCK_KEY = "magnet:tracking:drain"
LOCK_SECONDS = 120
BATCH = 5000
TIME_BUDGET = 30.0  # seconds one drain may run before leaving the rest to the next one

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def pending() -> int:
    return int(connection().llen(QUEUE_KEY))


def drain(batch: int = BATCH, time_budget: float = TIME_BUDGET) -> int:
    """Store queued events, batch after batch, until the list is empty; returns how many."""
    conn = connection()
    token = secrets.token_hex(8)
    if not conn.set(LOCK_KEY, token, nx=True, ex=LOCK_SECONDS):
        return 0  # another worker is draining
    done, started = 0, time.monotonic()
    try:
        while time.monotonic() - started < time_budget:
            raw = conn.lrange(QUEUE_KEY, 0, batch - 1)
            if not raw:
                break
            store_batch([event for event in map(_decode, raw) if event is not None])
            conn.ltrim(QUEUE_KEY, len(raw), -1)
            conn.expire(LOCK_KEY, LOCK_SECONDS)
            done += len(raw)
            if len(raw) < batch:
                break
    finally:
        conn.eval(_RELEASE, 1, LOCK_KEY, token)
    return done


def store_batch(events: list[dict[str, Any]]) -> None:
    """Store a batch; if it fails, store its events one by one, so that one event the database
    refuses cannot hold up every event behind it. When every one fails (the database is down)
    the batch stays queued for the next drain."""
    try:
        ingest.store(events)
        return
    except Exception:
        if len(events) <= 1:
            raise
        log.exception("tracking: a batch of %d events failed; storing them one by one",
                      len(events))
    refused = 0
    for event in events:
        try:
            ingest.store([event])
        except Exception:
            refused += 1
    if refused == len(events):
        raise RuntimeError("tracking: the database refused every event; they stay queued")
    if refused:
        log.error("tracking: dropped %d event(s) the database refused", refused)


def _decode(raw: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(raw)
    except ValueError:
        log.warning("tracking: dropped an undecodable queued event")
        return None
    return event if isinstance(event, dict) else None
