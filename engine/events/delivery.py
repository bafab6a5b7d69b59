"""Delivering the event stream to `on_event`: in batches, per contact in order, exactly once.

On PostgreSQL a delivery job works on partitions (`models.PARTITIONS`; a contact's events all
fall in one), so several workers deliver at once. In ONE write transaction, it
1. takes the partitions of the oldest queued events, up to `PARTITIONS_AT_ONCE` of them
   (`FOR UPDATE SKIP LOCKED` on their rows, so another worker takes others),
2. reads up to `EVENTS_BATCH` queued events of them, oldest first,
3. calls every enabled plugin's `on_event(events)`, each in a savepoint,
4. deletes those queue rows.
SQLite has one writer at a time, so there a batch is the oldest `EVENTS_BATCH` queued events of
all partitions (steps 2-4 alike): one transaction for everything recorded since the last one.
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
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis
from flask import current_app
from sqlalchemy import bindparam, delete, func, select, update

from engine import plugins
from engine.db import db, is_sqlite, write
from engine.events.models import PARTITIONS, Activity, EventPartition, QueuedEvent
from engine.jobs import job, outbox
from engine.jobs.connection import connection
from engine.jobs.runner import enqueue_once

log = logging.getLogger("magnet.events")

WAKE_KEY = "magnet:events:wake"
WAKE_TTL = 60
PARTITIONS_AT_ONCE = PARTITIONS // 4  # PostgreSQL: partitions one delivery takes, at most
JOB_SECONDS = 20.0  # a job hands over to a fresh one after this long
_QUEUE = QueuedEvent.__table__
_EVENTS = Activity.__table__
_EVENT_COLUMNS = (_EVENTS.c.id, _EVENTS.c.type, _EVENTS.c.contact_id, _EVENTS.c.visitor_id,
                  _EVENTS.c.url, _EVENTS.c.properties, _EVENTS.c.occurred_at)
# SQLite: the oldest queued events and the events themselves, in one statement.
_JOINED_OLDEST = (select(_QUEUE.c.seq, _QUEUE.c.partition, *_EVENT_COLUMNS)
                  .select_from(_QUEUE.outerjoin(_EVENTS, _EVENTS.c.id == _QUEUE.c.event_id))
                  .order_by(_QUEUE.c.seq).limit(bindparam("batch")))
_PARTITIONS = EventPartition.__table__
# Each partition's count of events delivered, moved on by one executemany.
_COUNT_DELIVERED = (update(_PARTITIONS).where(_PARTITIONS.c.partition == bindparam("p"))
                    .values(delivered=_PARTITIONS.c.delivered + bindparam("n")))


def wake(force: bool = False) -> bool:
    """Make sure a delivery job is on its way (Redis down: the sweep will do it)."""
    try:
        enqueue_once(WAKE_KEY, run_deliveries, force=force, ttl=WAKE_TTL)
        return True
    except (redis.RedisError, OSError) as exc:
        log.warning("Redis unavailable; events wait for the next sweep: %s", exc)
        return False


class Waker:
    """One `wake()` at a time per process, for commits that left work for a job (recorded
    events here; events accepted by the API in `engine.api.drain`, with its own `send`): a
    commit made while another's wake is on its way asks for one more after it, rather than a
    round trip of its own. The commit that finds none on its way sends one; wakes asked for
    meanwhile are sent by a background thread (a greenlet under gevent), so no request waits
    for others' wakes. Every commit is still followed by a wake that begins after it.

    With `linger` (seconds), no commit sends a wake itself: the background thread sends one
    `linger` after the first commit that asked, for all the commits made by then - a round trip
    to Redis per `linger` under a stream, rather than one per commit, for a job that gathers
    its work that long anyway."""

    def __init__(self, app: Any, send: Callable[[], Any] | None = None,
                 linger: float = 0.0) -> None:
        self.app = app
        self.send = send or wake
        self.linger = linger
        self.lock = threading.Lock()
        self.running = False
        self.again = False

    def __call__(self) -> None:
        with self.lock:
            if self.running:
                self.again = True  # the wake in flight may have begun before this commit
                return
            self.running = True
        if self.linger > 0:
            threading.Thread(target=self._more, daemon=True).start()
            return
        try:
            self.send()
        finally:
            self._hand_on()

    def _hand_on(self) -> None:
        """Done with a wake: stop, or send the ones asked for meanwhile in the background."""
        with self.lock:
            if not self.again:  # checked and given up under one lock: none missed
                self.running = False
                return
            self.again = False
        threading.Thread(target=self._more, daemon=True).start()

    def _more(self) -> None:
        if self.linger > 0:
            time.sleep(self.linger)
            with self.lock:
                self.again = False  # the commits asking so far: this wake begins after them
        with self.app.app_context():
            try:
                self.send()
            finally:
                self._hand_on()


def wake_after_commit() -> None:
    """Make sure a delivery job will see what was just committed: `wake()`, shared with this
    process's other commits of the moment (`Waker`)."""
    waker = current_app.extensions.get("magnet.events.waker")
    if waker is None:
        waker = current_app.extensions.setdefault(
            "magnet.events.waker", Waker(current_app._get_current_object()))
    waker()


def run_deliveries() -> int:
    """The RQ job: deliver batch after batch until the queue is empty, time is up, or
    a job waits on the queue workers take before this one (`registry.QUEUES`)."""
    try:
        connection().delete(WAKE_KEY)  # commits from now on wake a new job
    except (redis.RedisError, OSError):
        pass
    deadline, total, start = time.monotonic() + JOB_SECONDS, 0, 0
    gather = float(current_app.config["EVENTS_GATHER_SECONDS"]) if is_sqlite() else 0.0
    batch = int(current_app.config["EVENTS_BATCH"])
    while time.monotonic() < deadline:
        delivered, start = deliver_next(start)
        if not delivered:
            return total
        total += delivered
        if outbox.ahead_waiting("events"):
            break  # a short job (due workflow steps) goes first; a fresh job goes on
        if delivered < batch and gather > 0:
            # The queue is drained: let the next batch gather rather than deliver each event
            # in a transaction of its own as it comes (see `EVENTS_GATHER_SECONDS`).
            time.sleep(gather)
    wake(force=True)
    return total


def deliver_next(start: int = 0) -> tuple[int, int]:
    """Deliver one batch: on PostgreSQL, the oldest queued events of up to
    `PARTITIONS_AT_ONCE` partitions that no other worker holds (`_queued_oldest`), else of
    the first free partition at or after `start` (round robin); on SQLite, the oldest queued
    events of every partition (see `_queued_sqlite`). Returns (events delivered, next
    start)."""
    batch = int(current_app.config["EVENTS_BATCH"])
    with write() as session:
        if is_sqlite():
            queued, after = _queued_sqlite(session, batch), start
            if not queued:
                return 0, start
            _deliver([as_dict(row) for row in queued if row.id is not None])  # erased: gone
            # One writer: the queue's rows up to the last one read are exactly those read.
            session.execute(delete(_QUEUE).where(_QUEUE.c.seq <= queued[-1].seq))
        else:
            queued, after = _queued_oldest(session, batch), start
            if not queued:  # their partitions are all held: another with queued events
                queued, after = _queued_partition(session, start, batch)
            if not queued:
                return 0, start
            _deliver(_events([row.event_id for row in queued]))
            session.execute(delete(_QUEUE).where(_QUEUE.c.seq.in_([row.seq for row in queued])))
        counts = Counter(row.partition for row in queued)
        session.execute(_COUNT_DELIVERED, [{"p": partition, "n": count}
                                           for partition, count in counts.items()])
        return len(queued), after


def _queued_sqlite(session: Any, batch: int) -> list[Any]:
    """The oldest `batch` queued events, whatever their partition, read with the events
    themselves (an erased event's columns are None). SQLite has one writer at a time, so
    partitions buy no parallel workers there, and a transaction per partition cost
    one delivery per contact: under a stream of events from many people, batches of one or
    two events, each paying a whole transaction (about 4 ms of a worker's CPU per event,
    against 0.2 ms in batches of fifty). Queue order is recording order, so each contact's
    events still come in order."""
    return list(session.execute(_JOINED_OLDEST, {"batch": batch}).all())


def _queued_oldest(session: Any, batch: int) -> list[Any]:
    """PostgreSQL: the oldest `batch` queued events of the partitions of the oldest events
    that no other worker holds, up to `PARTITIONS_AT_ONCE` of them (the next worker takes
    others). A trickle of events over many partitions was a transaction per partition, one
    or two events each, and the deliveries fell behind (a trigger's first email waited up to
    20 s at 50 events/s); in order per partition, as there."""
    oldest = sorted(set(session.execute(select(_QUEUE.c.partition).order_by(_QUEUE.c.seq)
                                        .limit(batch)).scalars()))
    if not oldest:
        return []
    taken = list(session.execute(select(EventPartition.partition)
                                 .where(EventPartition.partition.in_(oldest))
                                 .order_by(EventPartition.partition).limit(PARTITIONS_AT_ONCE)
                                 .with_for_update(skip_locked=True)).scalars())
    if not taken:
        return []
    return list(session.execute(
        select(_QUEUE.c.seq, _QUEUE.c.event_id, _QUEUE.c.partition)
        .where(_QUEUE.c.partition.in_(taken)).order_by(_QUEUE.c.seq).limit(batch)).all())


def _queued_partition(session: Any, start: int, batch: int) -> tuple[list[Any], int]:
    """The oldest `batch` queued events of the first partition at or after `start` that has
    some and that this transaction could lock, and the partition to start from next time."""
    partition: int | None = start % PARTITIONS
    for _ in range(PARTITIONS):
        partition = _next_queued(session, partition)
        if partition is None:
            break
        if _take(session, partition):
            return list(session.execute(
                select(_QUEUE.c.seq, _QUEUE.c.event_id, _QUEUE.c.partition)
                .where(_QUEUE.c.partition == partition)
                .order_by(_QUEUE.c.seq).limit(batch)).all()), partition + 1
        partition = (partition + 1) % PARTITIONS
    return [], start


def _next_queued(session: Any, start: int) -> int | None:
    """The first partition at or after `start` (wrapping round) with queued events: one or two
    lookups on the (partition, seq) index, rather than a query per partition while holding
    the transaction."""
    for where in (_QUEUE.c.partition >= start, _QUEUE.c.partition < start):
        found = session.execute(select(_QUEUE.c.partition).where(where)
                                .order_by(_QUEUE.c.partition).limit(1)).scalar()
        if found is not None:
            return int(found)
    return None


def _take(session: Any, partition: int) -> bool:
    """Lock the partition's row for this transaction; False when another worker has it."""
    if is_sqlite():
        return True  # this transaction is SQLite's only writer
    return session.execute(select(EventPartition.partition)
                           .where(EventPartition.partition == partition)
                           .with_for_update(skip_locked=True)).first() is not None


def _events(event_ids: list[int]) -> list[dict[str, Any]]:
    """The events of these ids still on the timeline (erased ones are gone), as `on_event`
    receives them."""
    return [as_dict(row) for row in db.session.execute(
        select(*_EVENT_COLUMNS).where(_EVENTS.c.id.in_(event_ids)))]


def _deliver(events: list[dict[str, Any]]) -> None:
    """Hand the events to `on_event` in the order they happened. They are read as plain rows:
    building ORM objects for hundreds of events a batch cost a quarter of a delivery, for
    dicts made from them straight away."""
    events.sort(key=lambda e: (e["occurred_at"], e["id"]))
    if events:
        plugins.current().call("on_event", savepoint=True, events=events)


def as_dict(row: Any) -> dict[str, Any]:
    """What `on_event` receives for one event (`row`: an `Activity`, or a row of its columns)."""
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
