"""The Redis buffer between the web processes and the database.

Web processes append events to a Redis list (`handover`), each item a JSON array of the events
one hand-over carried (up to `GROUP`): one item per hand-over rather than one per event spares
the web process, Redis and the drain a per-event share of every list operation. The periodic
drain job reads items until it holds `BATCH` events and stores them in one transaction. Items
leave the list only after their transaction committed (read with LRANGE, then LTRIM), so a
worker killed mid-batch loses nothing: the next drain meets that batch again, and storing it is
idempotent (each event's id, see `ingest`). An item holding one JSON object is one event (what
web processes queued before items were arrays). One drain runs at a time across all workers,
held by a Redis lock with an expiry.
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
BATCH = 5000  # events per transaction, give or take one item's
GROUP = 500  # events per item at most (`handover` cuts longer hand-overs)
WINDOW = 100  # items read from the list at a time
TIME_BUDGET = 30.0  # seconds one drain may run before leaving the rest to the next one

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def pending() -> int:
    """Events waiting in the list (counted by reading it: for the command line and tests)."""
    conn, count, start = connection(), 0, 0
    while raw := conn.lrange(QUEUE_KEY, start, start + WINDOW - 1):
        count += sum(len(_decode(item)) for item in raw)
        start += len(raw)
    return count


def drain(batch: int = BATCH, time_budget: float = TIME_BUDGET) -> int:
    """Store queued events, batch after batch, until the list is empty; returns how many."""
    conn = connection()
    token = secrets.token_hex(8)
    if not conn.set(LOCK_KEY, token, nx=True, ex=LOCK_SECONDS):
        return 0  # another worker is draining
    done, started = 0, time.monotonic()
    try:
        while time.monotonic() - started < time_budget:
            items, events, more = _oldest(conn, batch)
            if not items:
                break
            store_batch(events)
            conn.ltrim(QUEUE_KEY, items, -1)
            conn.expire(LOCK_KEY, LOCK_SECONDS)
            done += len(events)
            if not more:
                break
    finally:
        conn.eval(_RELEASE, 1, LOCK_KEY, token)
    return done


def _oldest(conn: Any, batch: int) -> tuple[int, list[Any], bool]:
    """(items, their events, whether more items wait): the oldest items of the list, as
    many as hold `batch` events or all there are."""
    items, events = 0, []
    while len(events) < batch:
        raw = conn.lrange(QUEUE_KEY, items, items + WINDOW - 1)
        for item in raw:
            items += 1
            events.extend(_decode(item))
            if len(events) >= batch:
                return items, events, True
        if len(raw) < WINDOW:
            return items, events, False
    return items, events, True


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


def _decode(raw: bytes) -> list[Any]:
    """The events of one item, as queued: `ingest` drops any of an unknown shape (counted
    among those drained, as an undecodable item is)."""
    try:
        found = json.loads(raw)
    except ValueError:
        log.warning("tracking: dropped an undecodable queued item")
        return [None]
    return found if isinstance(found, list) else [found]
