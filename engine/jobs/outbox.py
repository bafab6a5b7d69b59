"""The transactional outbox: work that must happen after a commit, and never be lost.

`add()` writes a row in the caller's transaction, so the follow-up exists exactly when the data
it follows does. After the commit, the queue the row's job runs on is woken: one RQ job
(`run_batch`) is enqueued per queue unless one is already waiting, and it works through
every due row of that queue in batches. An RQ job per row would cost more than the work itself
(a submission's follow-up is a few milliseconds; RQ's own bookkeeping is several more), so rows
are claimed and finished a batch at a time. When Redis is unreachable nothing is woken and the
rows simply wait; `sweep()`, a periodic job, wakes every queue that has due rows.

A batch claims its rows (`pending` -> `running`, one UPDATE that only matches pending rows)
before acting: two batches running at once, or a job that Redis delivers twice, never act on one
row twice. Each row is marked done as soon as it ran, and only while this worker still holds it;
a batch never starts a row past half its lease, so the sweep cannot hand a row to a second
worker while the first may still run it. Failures are retried with back-off from the row itself
(durable even if Redis loses its queue); after `OUTBOX_MAX_ATTEMPTS` the row is `failed` and
shows in `magnet jobs`. A worker killed mid-batch leaves its rows `running`; when the lease
expires, `sweep()` makes them pending again, and only the row that was in progress can act twice
(for non-atomic jobs: SMTP allows no better). Rows of a disabled plugin wait, unrun.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from flask import current_app
from rq import Queue
from rq.timeouts import JobTimeoutException
from sqlalchemy import (
    JSON,
    Index,
    Integer,
    String,
    Text,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.db import UTCDateTime, db, utcnow, write
from engine.jobs import registry
from engine.jobs.connection import connection

log = logging.getLogger("magnet.outbox")

BACKOFF_SECONDS = (5, 30, 120, 600, 1800, 3600, 7200, 14400)
BATCH_SIZE = 200
# Rows claimed at a time on queues whose rows are big: a mailing's row is hundreds of emails,
# so a worker takes one and leaves the next to any other free worker.
CLAIM_SIZES = {"mail": 1}
BATCH_SECONDS = 20.0  # a batch job hands over to a fresh one after this long
WAKE_KEY = "magnet:outbox:wake:{}"
WAKE_TTL = 60  # a wake whose job was lost (Redis flushed) expires; the sweep wakes again


class OutboxRow(db.Model):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_queue_status_available", "queue", "status", "available_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(100))
    queue: Mapped[str] = mapped_column(String(20), default="default")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(10), default="pending")  # running, done, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")


_TABLE = OutboxRow.__table__
_INSERT = insert(_TABLE).returning(_TABLE.c.id)


@dataclass(frozen=True)
class Claimed:
    """A row this worker claimed, as it was claimed: plain data, not an ORM object, so the
    many transactions of a batch never expire or reload it."""

    id: int
    job: str
    payload: dict[str, Any]
    attempts: int
    claimed_at: datetime

    @classmethod
    def of(cls, row: Any) -> Claimed:
        return cls(row.id, row.job, row.payload, row.attempts, row.claimed_at)


def add(job_name: str, delay: timedelta | None = None, **payload: Any) -> int:
    """Queue `job_name(**payload)` to run after the current transaction commits; returns the
    row's id.

    Call it inside `engine.db.write()`; the payload must be JSON (ids, not objects). The row is
    inserted at once with a Core statement (every form submission writes one).
    """
    spec = registry.get(job_name)  # fail now, in the caller, on a misspelt job
    now = utcnow()
    session = db.session()
    session.flush()  # ORM changes made before come first, as the caller made them
    row_id = session.connection().execute(_INSERT, {
        "job": job_name, "queue": spec.queue, "payload": payload, "status": "pending",
        "attempts": 0, "created_at": now, "available_at": now + (delay or timedelta(0)),
        "last_error": ""}).scalar_one()
    if not delay:
        session.info.setdefault("magnet_outbox_queues", set()).add(spec.queue)
    return int(row_id)


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    queues = session.info.pop("magnet_outbox_queues", None)
    if queues:
        wake(queues)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop("magnet_outbox_queues", None)


def wake(queues: set[str] | list[str], force: bool = False) -> bool:
    """Make sure a batch job is on its way for each queue. Redis down: rows wait, no error."""
    try:
        conn = connection()
        for name in queues:
            if conn.set(WAKE_KEY.format(name), "1", nx=True, ex=WAKE_TTL) or force:
                Queue(name, connection=conn).enqueue(run_batch, name, result_ttl=0,
                                                     failure_ttl=7 * 86400, job_timeout=600)
        return True
    except (redis.RedisError, OSError) as exc:
        log.warning("Redis unavailable; outbox rows on %s wait for the next sweep: %s",
                    ", ".join(sorted(queues)), exc)
        return False


def claim(queue: str, limit: int = BATCH_SIZE) -> list[Claimed]:
    """Take up to `limit` due pending rows of a queue for this worker, oldest first; one
    statement claims them and returns what running them needs."""
    now = utcnow()
    due = (select(_TABLE.c.id)
           .where(_TABLE.c.queue == queue, _TABLE.c.status == "pending",
                  _TABLE.c.available_at <= now)
           .order_by(_TABLE.c.available_at, _TABLE.c.id).limit(limit)
           .with_for_update(skip_locked=True))  # PostgreSQL; SQLite serialises writers anyway
    with write() as session:
        rows = session.connection().execute(
            update(_TABLE)
            .where(_TABLE.c.id.in_(due), _TABLE.c.status == "pending")
            .values(status="running", claimed_at=now, attempts=_TABLE.c.attempts + 1)
            .returning(_TABLE.c.id, _TABLE.c.job, _TABLE.c.payload, _TABLE.c.attempts,
                       _TABLE.c.claimed_at)).all()
    return sorted((Claimed(*row) for row in rows), key=lambda row: row.id)


def claim_batch(queue: str, limit: int = BATCH_SIZE) -> list[OutboxRow]:
    """`claim()`, as ORM rows (for tools and tests that inspect or change them)."""
    ids = [row.id for row in claim(queue, limit)]
    if not ids:
        return []
    return list(db.session.scalars(select(OutboxRow).where(OutboxRow.id.in_(ids))
                                   .order_by(OutboxRow.id)
                                   .execution_options(populate_existing=True)))


def run_batch(queue: str) -> int:
    """Work through the queue's due rows until none is left, time is up, or a job waits on a
    queue that workers take first (`registry.QUEUES`: a mailing's batches give way to due
    workflow steps and to event delivery). Returns how many rows were run."""
    try:
        connection().delete(WAKE_KEY.format(queue))  # commits from now on wake a new job
    except (redis.RedisError, OSError):
        pass
    deadline, count = time.monotonic() + BATCH_SECONDS, 0
    limit = CLAIM_SIZES.get(queue, BATCH_SIZE)
    while time.monotonic() < deadline:
        rows = claim(queue, limit)
        if not rows:
            return count
        if len(rows) == limit:  # probably more: one job waits for the next free worker
            wake([queue])
        count += run_claimed(rows)
        if ahead_waiting(queue):
            break  # a job of a queue workers take first waits: it goes before the rest
    wake([queue], force=True)  # more to do: a fresh job, so other queues' jobs get their turn
    return count


def ahead_waiting(queue: str) -> bool:
    """Whether a job waits on a queue workers take before `queue`: a long job on it hands
    over (Redis unreachable: no)."""
    try:
        return registry.ahead_waiting(queue, connection())
    except (redis.RedisError, OSError):
        return False


def run_claimed(claimed: Sequence[Claimed | OutboxRow]) -> int:
    """Run claimed rows in order; hand back, unrun, those whose lease is half gone (the sweep
    could otherwise give them to a second worker while this one runs them). Returns how many
    ran."""
    lease = timedelta(seconds=current_app.config["OUTBOX_LEASE_SECONDS"])
    rows = [row if isinstance(row, Claimed) else Claimed.of(row) for row in claimed]
    for index, row in enumerate(rows):
        if utcnow() - row.claimed_at > lease / 2:
            _release(rows[index:], delay=timedelta(0))
            return index
        _run_one(row)
    return len(rows)


def _owned(row: Claimed) -> Any:
    """The condition that this worker still holds the row it claimed."""
    return (_TABLE.c.id == row.id) & (_TABLE.c.status == "running") & \
        (_TABLE.c.claimed_at == row.claimed_at)


def _run_one(row: Claimed) -> None:
    """Run one claimed row and record the outcome (each row on its own, so a crash repeats
    at most the row in progress)."""
    try:
        spec = registry.get(row.job)
        if spec.owner and not current_app.extensions["magnet.plugins"].is_enabled(spec.owner):
            log.info("outbox row %s (%s) waits: plugin %r is disabled", row.id, row.job,
                     spec.owner)
            _release([row], delay=timedelta(minutes=5))
            return
        if spec.atomic:  # the handler's writes commit together with the done mark
            with write() as session:
                spec.func(**row.payload)
                if not _mark_done(session, row):
                    raise LostClaim(f"outbox row {row.id} was handed to another worker")
        else:
            spec.func(**row.payload)
            with write() as session:
                _mark_done(session, row)
    except JobTimeoutException:
        raise  # RQ's job timeout must stop the batch, not be taken for the row's failure
    except RetryLater as exc:
        db.session.rollback()
        log.info("outbox row %s (%s) waits %s: %s", row.id, row.job, exc.delay, exc)
        _release([row], delay=exc.delay)
    except Exception as exc:
        db.session.rollback()
        log.exception("outbox row %s (%s) failed on attempt %s", row.id, row.job, row.attempts)
        _mark_failed(row, exc)


def _mark_done(session: Any, row: Claimed) -> bool:
    """Done, and its payload forgotten: what it carried (a submission's changed values) is
    personal data that nothing needs once the job ran."""
    return bool(session.connection().execute(update(_TABLE).where(_owned(row)).values(
        status="done", done_at=utcnow(), last_error="", payload={})).rowcount)


class RetryLater(Exception):
    """Raised by a job that cannot go on yet (a send rate's hourly allowance is used up): the
    row is given back, without counting an attempt, to run again after `delay`."""

    def __init__(self, message: str, delay: timedelta) -> None:
        super().__init__(message)
        self.delay = delay


class LostClaim(Exception):
    """The row's lease expired and the sweep gave it to another worker."""


def _release(rows: list[Claimed], delay: timedelta) -> None:
    """Give claimed rows back, unrun, without counting an attempt."""
    with write() as session:
        for row in rows:
            session.connection().execute(update(_TABLE).where(_owned(row)).values(
                status="pending", attempts=_TABLE.c.attempts - 1,
                available_at=utcnow() + delay))


def _mark_failed(row: Claimed, exc: Exception) -> str:
    max_attempts = current_app.config["OUTBOX_MAX_ATTEMPTS"]
    give_up = row.attempts >= max_attempts
    delay = BACKOFF_SECONDS[min(row.attempts, len(BACKOFF_SECONDS)) - 1]
    status = "failed" if give_up else "pending"
    with write() as session:
        session.connection().execute(update(_TABLE).where(_owned(row)).values(
            status=status, last_error=f"{type(exc).__name__}: {exc}"[:4000],
            available_at=utcnow() + timedelta(seconds=delay)))
    return status


def sweep() -> int:
    """Wake the queues with due rows that no job is working on: rows left while Redis was down,
    delayed or retried rows that came due, rows of a crashed worker. Returns how many rows are
    due (0 when Redis is still unreachable: nothing could be handed over)."""
    now = utcnow()
    lease = timedelta(seconds=current_app.config["OUTBOX_LEASE_SECONDS"])
    with write() as session:
        session.execute(update(OutboxRow)  # a crashed worker's rows become pending again
                        .where(OutboxRow.status == "running", OutboxRow.claimed_at < now - lease)
                        .values(status="pending"))
    due = dict(db.session.execute(
        select(OutboxRow.queue, func.count())
        .where(OutboxRow.status == "pending", OutboxRow.available_at <= now)
        .group_by(OutboxRow.queue)).all())
    if not due or not wake(set(due)):
        return 0
    return sum(due.values())


def requeue_failed() -> int:
    """Give failed rows another round of attempts (`magnet jobs requeue`)."""
    with write() as session:
        rows = session.execute(update(OutboxRow).where(OutboxRow.status == "failed").values(
            status="pending", attempts=0, available_at=utcnow())).rowcount
        queues = set(session.scalars(select(OutboxRow.queue).where(
            OutboxRow.status == "pending").distinct()))
    if queues:
        wake(queues)
    return rows
