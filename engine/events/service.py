"""Recording events: on the timeline and in the delivery queue, in the caller's transaction.

Everything that happens to a contact or a visitor is recorded here, whoever records it (forms,
the contact store, tracking, mail, plugins, the API), so `on_event` hears about all of it in one
stream. Recording costs two multi-row INSERTs whatever the number of events (the timeline rows,
then their queue rows), and wakes a delivery worker when the transaction commits; when Redis is
unreachable the queue rows simply wait for the periodic sweep. `defer()` gathers a
transaction's events into one such pair, written when it commits.
"""
from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from engine import bulk
from engine.db import db, utcnow
from engine.events.delivery import wake_after_commit
from engine.events.models import PARTITIONS, Activity, QueuedEvent

PENDING = "magnet_events_recorded"  # session.info flag: wake delivery after the commit
DEFERRED = "magnet_events_deferred"  # session.info: events to write when the write commits
ENDED = "magnet_events_ended_savepoints"  # session.info: marks of savepoints just ended
SAVEPOINTS = "magnet_events_savepoints"  # session.info: {savepoint: deferred count at its start}
_EVENTS, _QUEUE = Activity.__table__, QueuedEvent.__table__


def partition_of(contact_id: int | None, visitor_id: str | None) -> int:
    """A contact's events share a partition (delivered in order); so do an anonymous
    browser's."""
    if contact_id:
        return contact_id % PARTITIONS
    if visitor_id:
        return zlib.crc32(visitor_id.encode()) % PARTITIONS
    return 0


def record(type: str, *, contact_id: int | None = None, visitor_id: str | None = None,
           url: str = "", properties: dict[str, Any] | None = None,
           occurred_at: datetime | None = None) -> int:
    """Record one event inside `engine.db.write()`; returns its id."""
    return record_many([{"type": type, "contact_id": contact_id, "visitor_id": visitor_id,
                         "url": url, "properties": properties, "occurred_at": occurred_at}])[0]


def record_many(rows: list[dict[str, Any]]) -> list[int]:
    """Record events (dicts of `record()`'s arguments) inside `engine.db.write()`; returns
    their ids, in order. Each is stored on the timeline and queued for `on_event`.

    Events deferred before them in the same transaction are written first, in the same
    INSERTs: a contact created by the store and then sent an event has its `contact_created`
    first, as it happened. (Those deferred before the innermost savepoint still wait for the
    commit, since writing them now would lose them if only the savepoint rolled back.)"""
    if not rows:
        return []
    session = db.session()
    earlier = _take_deferred(session)
    return _insert(session, earlier + rows)[len(earlier):]


def _take_deferred(session: Session) -> list[dict[str, Any]]:
    """The events deferred since the innermost open savepoint began (all, without one),
    no longer deferred."""
    deferred = session.info.get(DEFERRED)
    if not deferred:
        return []
    start = max(session.info.get(SAVEPOINTS, {}).values(), default=0)
    taken = deferred[start:]
    del deferred[start:]
    return taken


def _insert(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    now = utcnow()
    values = [{"type": r["type"], "contact_id": r.get("contact_id"),
               "visitor_id": r.get("visitor_id"), "url": (r.get("url") or "")[:4000],
               "properties": r.get("properties") or {}, "occurred_at": r.get("occurred_at") or now}
              for r in rows]
    session.flush()  # ORM changes made before come first, as the caller made them
    connection = session.connection()
    # One statement per table whatever the batch (`engine.bulk`); the ids, sorted, are in the
    # order the events were given.
    stored = sorted(bulk.insert_rows(connection, _EVENTS, values,
                                     returning=("id", "contact_id", "visitor_id")))
    bulk.insert_rows(connection, _QUEUE, [
        {"partition": partition_of(contact_id, visitor_id), "event_id": event_id}
        for event_id, contact_id, visitor_id in stored])
    ids = [event_id for event_id, _, _ in stored]
    session.info[PENDING] = True
    return ids


def defer(rows: list[dict[str, Any]]) -> None:
    """Record events (as `record_many`) when the transaction commits, together with every other
    event deferred in it: one pair of INSERTs for all of a form submission's events (the
    contact created, its tags, its lists, the submission) instead of a pair per kind. For
    callers that need no ids. Events deferred inside a savepoint that rolls back are dropped
    with it."""
    if rows:
        db.session().info.setdefault(DEFERRED, []).extend(rows)


@sa_event.listens_for(Session, "before_commit")
def _write_deferred(session: Session) -> None:
    rows = session.info.pop(DEFERRED, None)
    if rows:
        _insert(session, rows)


@sa_event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: Any) -> None:
    if transaction.nested:
        marks = session.info.setdefault(SAVEPOINTS, {})
        marks[id(transaction)] = len(session.info.get(DEFERRED, ()))


@sa_event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous: Any) -> None:
    mark = session.info.get(ENDED, {}).pop(id(previous), None)
    if previous.nested and mark is not None and DEFERRED in session.info:
        del session.info[DEFERRED][mark:]


@sa_event.listens_for(Session, "after_transaction_end")
def _forget_savepoint(session: Session, transaction: Any) -> None:
    if transaction.nested:
        mark = session.info.get(SAVEPOINTS, {}).pop(id(transaction), None)
        if mark is not None:  # SQLAlchemy calls after_soft_rollback after this
            session.info.setdefault(ENDED, {})[id(transaction)] = mark
    elif transaction.parent is None:
        session.info.pop(ENDED, None)


@sa_event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    if session.info.pop(PENDING, None):
        held = _held.get()
        if held is None:
            wake_after_commit()
        else:
            held.append(True)


_held: ContextVar[list[bool] | None] = ContextVar("magnet_events_wake_held", default=None)


@contextmanager
def one_wake() -> Iterator[None]:
    """Many short writes that each record an event (a mailing marks every recipient in a write
    of its own) wake delivery once, at the end, rather than with a Redis call per commit. The
    events are stored and queued at each commit all the same; only the nudge waits."""
    held: list[bool] = []
    token = _held.set(held)
    try:
        yield
    finally:
        _held.reset(token)
        if held:
            wake_after_commit()


@sa_event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint's (this fires for those too): `_drop_rolled_back` drops its own
    session.info.pop(PENDING, None)
    session.info.pop(DEFERRED, None)
