"""Delivering the event stream to `on_event`: in batches, per contact in order, exactly once.

A delivery job works partition by partition (`models.PARTITIONS`; a contact's events all fall
in one). For each, in ONE write transaction, it
1. takes the partition (PostgreSQL: `FOR UPDATE SKIP LOCKED` on its row, so another worker
   takes another partition; SQLite has one writer at a time anyway),
2. reads up to `EVENTS_BATCH` queued events of it, oldest first,
3. calls every enabled plugin's `on_event(events)`, each in a savepoint,
4. deletes those queue rows.
What a handler writes (including outbox rows for emails or webhooks) commits with the deletion,
or neither does: a worker that dies mid-batch leaves the batch queued and its effects unwritten,
and the next delivery runs it again. So each event's effects happen exactly once, as long as
handlers act through the database (anything else goes through the outbox); a handler may
still see an event a second time after such a crash, which is why events carry their `id`.
A plugin that raises loses only its own savepoint: the error is reported to the owner and the
other plugins' work on the batch stands.

Jobs are woken after each commit that recorded events (one waiting job at a time, as the
outbox does) and by the periodic sweep, which also covers commits made while Redis was down.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import redis
from flask import current_app
from rq import Queue
from sqlalchemy import delete, func, select, update

from engine import plugins
from engine.db import db, is_sqlite, write
from engine.events.models import PARTITIONS, Activity, EventPartition, QueuedEvent
from engine.jobs import job
from engine.jobs.connection import connection

log = logging.getLogger("magnet.events")

WAKE_KEY = "magnet:events:wake"
WAKE_TTL = 60
JOB_SECONDS = 20.0  # a job hands over to a fresh one after this long
_QUEUE = QueuedEvent.__table__


def wake(force: bool = False) -> bool:
    """Make sure a delivery job is on its way (Redis down: the sweep will do it)."""
    try:
        conn = connection()
        if conn.set(WAKE_KEY, "1", nx=True, ex=WAKE_TTL) or force:
            Queue("events", connection=conn).enqueue(run_deliveries, result_ttl=0,
                                                    failure_ttl=7 * 86400, job_timeout=600)
        return True
    except (redis.RedisError, OSError) as exc:
        log.warning("Redis unavailable; events wait for the next sweep: %s", exc)
        return False


def run_deliveries() -> int:
    """The RQ job: deliver partition after partition until the queue is empty or time is up."""
    try:
        connection().delete(WAKE_KEY)  # commits from now on wake a new job
    except (redis.RedisError, OSError):
        pass
    deadline, total, start = time.monotonic() + JOB_SECONDS, 0, 0
    while time.monotonic() < deadline:
        delivered, start = deliver_next(start)
        if not delivered:
            return total
        total += delivered
    wake(force=True)
    return total


def deliver_next(start: int = 0) -> tuple[int, int]:
    """Deliver one batch of the first partition at or after `start` (round robin) that has
    queued events and that no other worker holds. Returns (events delivered, next start)."""
    batch = int(current_app.config["EVENTS_BATCH"])
    with write() as session:
        for offset in range(PARTITIONS):
            partition = (start + offset) % PARTITIONS
            if not _has_queued(session, partition) or not _take(session, partition):
                continue
            queued = session.execute(
                select(_QUEUE.c.seq, _QUEUE.c.event_id).where(_QUEUE.c.partition == partition)
                .order_by(_QUEUE.c.seq).limit(batch)).all()
            _deliver([row.event_id for row in queued])
            session.execute(delete(_QUEUE).where(_QUEUE.c.seq.in_([row.seq for row in queued])))
            session.execute(update(EventPartition).where(EventPartition.partition == partition)
                            .values(delivered=EventPartition.delivered + len(queued)))
            return len(queued), partition + 1
    return 0, start


def _has_queued(session: Any, partition: int) -> bool:
    return session.execute(select(_QUEUE.c.seq).where(_QUEUE.c.partition == partition)
                           .limit(1)).first() is not None


def _take(session: Any, partition: int) -> bool:
    """Lock the partition's row for this transaction; False when another worker has it."""
    if is_sqlite():
        return True  # this transaction is SQLite's only writer
    return session.execute(select(EventPartition.partition)
                           .where(EventPartition.partition == partition)
                           .with_for_update(skip_locked=True)).first() is not None


def _deliver(event_ids: list[int]) -> None:
    rows = {row.id: row for row in db.session.scalars(
        select(Activity).where(Activity.id.in_(event_ids)))}
    events = [as_dict(rows[i]) for i in event_ids if i in rows]  # erased ones are gone
    events.sort(key=lambda e: (e["occurred_at"], e["id"]))
    if events:
        plugins.current().call("on_event", savepoint=True, events=events)


def as_dict(row: Activity) -> dict[str, Any]:
    """What `on_event` receives for one event."""
    return {"id": row.id, "type": row.type, "contact_id": row.contact_id,
            "visitor_id": row.visitor_id, "url": row.url, "properties": dict(row.properties or {}),
            "occurred_at": row.occurred_at}


def pending() -> int:
    """Events recorded and not delivered yet."""
    return db.session.scalar(select(func.count()).select_from(_QUEUE)) or 0


@job("events.sweep", every=15)
def sweep() -> int:
    """Wake delivery when events wait: recorded while Redis was away, or left by a job that
    died. Returns how many wait."""
    waiting = db.session.execute(select(_QUEUE.c.seq).limit(1)).first()
    if waiting is not None:
        wake()
    return pending() if waiting is not None else 0
