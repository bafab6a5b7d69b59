"""The transactional outbox: work that must happen after a commit, and never be lost.

`add()` writes a row in the caller's transaction, so the follow-up exists exactly when the data
it follows does. After the commit the row's id is handed to RQ; when Redis is unreachable the row
simply waits and `sweep()` (a periodic job) hands it over later. A job carries only the row id
and claims the row (`pending` -> `running`, one UPDATE) before acting: a job enqueued twice, or
retried after it already ran, finds nothing to claim and does nothing.

Failures are retried with back-off from the row itself (durable even if Redis loses its queue);
after `OUTBOX_MAX_ATTEMPTS` the row is `failed` and shows in `magnet jobs`. A worker killed
mid-job leaves its row `running`; when the lease expires, `sweep()` makes it pending again — the
only case where a non-atomic job can act twice (once per crash).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import redis
from flask import current_app
from sqlalchemy import JSON, Index, Integer, String, Text, event, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.db import UTCDateTime, db, utcnow, write
from engine.jobs import registry
from engine.jobs.connection import connection

log = logging.getLogger("magnet.outbox")

BACKOFF_SECONDS = (5, 30, 120, 600, 1800, 3600, 7200, 14400)
RELAY_GRACE = timedelta(seconds=10)  # rows younger than this were just handed over after commit
SWEEP_BATCH = 1000


class OutboxRow(db.Model):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_available", "status", "available_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(10), default="pending")  # running, done, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    relayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")


def add(job_name: str, delay: timedelta | None = None, **payload: Any) -> OutboxRow:
    """Queue `job_name(**payload)` to run after the current transaction commits.

    Call it inside `engine.db.write()`; the payload must be JSON (ids, not objects).
    """
    registry.get(job_name)  # fail now, in the caller, on a misspelt job
    now = utcnow()
    row = OutboxRow(job=job_name, payload=payload, status="pending", attempts=0,
                    created_at=now, available_at=now + (delay or timedelta(0)))
    session = db.session()
    session.add(row)
    session.info.setdefault("magnet_outbox", []).append(row)
    return row


@event.listens_for(Session, "after_commit")
def _relay_after_commit(session: Session) -> None:
    rows = session.info.pop("magnet_outbox", None)
    if rows:
        due = [row for row in rows if row.available_at <= utcnow()]
        if due:
            relay(due)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop("magnet_outbox", None)


def relay(rows: list[OutboxRow]) -> int:
    """Hand rows to RQ; returns how many were handed. Redis down: they wait for `sweep()`."""
    from rq import Queue

    from engine.jobs.runner import run_outbox_row
    try:
        conn = connection()
        with conn.pipeline() as pipe:
            for row in rows:
                queue = Queue(registry.get(row.job).queue, connection=conn)
                queue.enqueue(run_outbox_row, row.id, job_id=f"outbox-{row.id}-{row.attempts}",
                              pipeline=pipe, result_ttl=60, failure_ttl=7 * 86400)
            pipe.execute()
        return len(rows)
    except (redis.RedisError, OSError) as exc:
        log.warning("Redis unavailable, %d outbox row(s) wait for the next sweep: %s",
                    len(rows), exc)
        return 0


def claim(row_id: int) -> OutboxRow | None:
    """Take a due pending row for this worker; None if it is not due, done or taken."""
    now = utcnow()
    with write() as session:
        claimed = session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == row_id, OutboxRow.status == "pending",
                   OutboxRow.available_at <= now)
            .values(status="running", claimed_at=now, attempts=OutboxRow.attempts + 1)
        ).rowcount
    return db.session.get(OutboxRow, row_id, populate_existing=True) if claimed else None


def run(row_id: int) -> str:
    """Claim the row, run its job, record the outcome. Returns the row's new status."""
    row = claim(row_id)
    if row is None:
        return "skipped"
    spec = registry.get(row.job)
    try:
        if spec.atomic:
            with write():
                spec.func(**row.payload)
                _mark_done(row_id)
        else:
            spec.func(**row.payload)
            with write():
                _mark_done(row_id)
        return "done"
    except Exception as exc:
        log.exception("outbox row %s (%s) failed on attempt %s", row_id, row.job, row.attempts)
        return _mark_failed(row, exc)


def _mark_done(row_id: int) -> None:
    db.session.execute(update(OutboxRow).where(OutboxRow.id == row_id)
                       .values(status="done", done_at=utcnow(), last_error=""))


def _mark_failed(row: OutboxRow, exc: Exception) -> str:
    max_attempts = current_app.config["OUTBOX_MAX_ATTEMPTS"]
    give_up = row.attempts >= max_attempts
    delay = BACKOFF_SECONDS[min(row.attempts, len(BACKOFF_SECONDS)) - 1]
    status = "failed" if give_up else "pending"
    with write() as session:
        session.execute(update(OutboxRow).where(OutboxRow.id == row.id).values(
            status=status, last_error=f"{type(exc).__name__}: {exc}"[:4000],
            available_at=utcnow() + timedelta(seconds=delay), relayed_at=None))
    return status


def sweep() -> int:
    """Hand over due rows that are not in Redis: left while it was down, delayed, retried, or
    orphaned by a crashed worker. Returns how many were relayed."""
    now = utcnow()
    lease = timedelta(seconds=current_app.config["OUTBOX_LEASE_SECONDS"])
    with write() as session:
        session.execute(update(OutboxRow)  # a crashed worker's rows become pending again
                        .where(OutboxRow.status == "running", OutboxRow.claimed_at < now - lease)
                        .values(status="pending", relayed_at=None))
        rows = list(session.scalars(
            select(OutboxRow)
            .where(OutboxRow.status == "pending", OutboxRow.available_at <= now,
                   OutboxRow.created_at < now - RELAY_GRACE,
                   or_(OutboxRow.relayed_at.is_(None), OutboxRow.relayed_at < now - lease))
            .order_by(OutboxRow.available_at).limit(SWEEP_BATCH)))
    if not rows or not relay(rows):
        return 0
    with write() as session:
        session.execute(update(OutboxRow).where(OutboxRow.id.in_([r.id for r in rows]))
                        .values(relayed_at=now))
    return len(rows)


def requeue_failed() -> int:
    """Give failed rows another round of attempts (`magnet jobs requeue`)."""
    with write() as session:
        count = session.execute(update(OutboxRow).where(OutboxRow.status == "failed").values(
            status="pending", attempts=0, available_at=utcnow(), relayed_at=None)).rowcount
    return count
