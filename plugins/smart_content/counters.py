"""Views and conversions, counted without a database write per page view.

Each web process adds to a counter in its memory (a dictionary increment); at most every
`FLUSH_SECONDS` it adds them to one Redis hash in one pipelined round trip (`HINCRBY`), and on
shutdown it hands over what is left. The periodic job `smart_content.flush` moves the hash into
`smart_stats` (`store`): it renames the hash first, so counts added meanwhile go to a fresh one,
and a rename left by a crashed run is stored by the next run. If Redis is down, counts stay in
memory and are tried again (a process that dies with counts in memory loses those seconds).

A view is a page served with the variant (cached or not); a conversion is a form submission in
a visit where the variant was shown before (`visit.seen_in_visit`).
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import date

import redis
from flask import current_app
from sqlalchemy import select

from engine.db import db, utcnow, write
from engine.jobs.connection import client_for
from plugins.smart_content import profiles
from plugins.smart_content.models import SmartStat

HASH = "smart:counts"
CLAIMED = "smart:counts:storing"
FLUSH_SECONDS = 2.0
EXTENSION = "smart_content.counters"


class Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: Counter[str] = Counter()
        self.flushed_at = time.monotonic()


def _counts() -> Counts:
    found = current_app.extensions.get(EXTENSION)
    if found is None:
        found = current_app.extensions.setdefault(EXTENSION, Counts())
    return found


def add(kind: str, block_id: int, variant: int) -> None:
    """Count one view ("v") or conversion ("c") today; flush to Redis now and then."""
    counts = _counts()
    with counts.lock:
        counts.pending[f"{utcnow().date().isoformat()}|{block_id}|{variant}|{kind}"] += 1
    if time.monotonic() - counts.flushed_at >= FLUSH_SECONDS:
        flush()


def flush() -> None:
    """Hand this process's counts to Redis (one pipelined round trip)."""
    counts = _counts()
    with counts.lock:
        pending, counts.pending = counts.pending, Counter()
        counts.flushed_at = time.monotonic()
    if not pending:
        return
    try:
        pipe = profiles.fast().pipeline(transaction=False)
        for field, n in pending.items():
            pipe.hincrby(HASH, field, n)
        pipe.execute()
    except (redis.RedisError, OSError):
        with counts.lock:
            counts.pending.update(pending)


def store() -> int:
    """Move the counts from Redis into `smart_stats` (the periodic job); how many rows changed."""
    client = client_for(current_app)
    if not client.exists(CLAIMED):
        try:
            client.rename(HASH, CLAIMED)
        except redis.ResponseError:  # no counts yet
            return 0
    raw = client.hgetall(CLAIMED)
    totals: dict[tuple[date, int, int], list[int]] = {}
    for field, n in raw.items():
        try:
            day, block, variant, kind = field.decode().split("|")
            key = (date.fromisoformat(day), int(block), int(variant))
        except ValueError:
            continue
        totals.setdefault(key, [0, 0])[0 if kind == "v" else 1] += int(n)
    with write():
        for (day, block, variant), (views, conversions) in sorted(totals.items()):
            row = db.session.scalar(select(SmartStat).where(
                SmartStat.day == day, SmartStat.block_id == block, SmartStat.variant == variant))
            if row is None:
                db.session.add(SmartStat(day=day, block_id=block, variant=variant, views=views,
                                         conversions=conversions))
            else:
                row.views += views
                row.conversions += conversions
    client.delete(CLAIMED)
    return len(totals)


def unstored() -> Counter[tuple[int, int, str]]:
    """Counts not in the database yet (Redis and this process), for a report that is current."""
    found: Counter[tuple[int, int, str]] = Counter()
    fields: list[tuple[str, int]] = list(_counts().pending.items())
    try:
        client = client_for(current_app)
        for name in (HASH, CLAIMED):
            fields += [(k.decode(), int(v)) for k, v in client.hgetall(name).items()]
    except (redis.RedisError, OSError):
        pass
    for field, n in fields:
        try:
            _day, block, variant, kind = field.split("|")
            found[(int(block), int(variant), kind)] += n
        except ValueError:
            continue
    return found
