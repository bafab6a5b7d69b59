"""The drain: events the API accepted into the intake become contacts and events, in batches.

The API answers once an event is in the intake (one INSERT); storing its contact and its event
costs several statements more, which a worker pays here for hundreds of events in one
transaction. In ONE write transaction, a batch
1. takes the oldest waiting intake rows, up to `API_INTAKE_BATCH` (on PostgreSQL with
   `FOR UPDATE SKIP LOCKED`, so a second drain takes the next ones; on SQLite read, with their
   types checked, just before the transaction, which keeps those still waiting: the shorter
   it holds the writers' turn, the less the web processes' intake commits wait),
2. saves the rows' contacts (`engine.contacts.store.save_addresses`, origin "api": an unknown
   address is a new contact with consent unknown), all of them with a few statements,
3. records their events with one `events.record_many` (so each contact's come in intake order,
   after its `contact_created`),
4. marks the rows processed (with the ids stored) - or deletes them, when no idempotency key
   needs their answer.
A crash or an error anywhere rolls all of it back, and the rows wait for the next drain: an
event is never recorded twice, nor lost. After an error, the batch's rows are tried one by one,
so a row that always fails is refused on its own (kept, with the error) instead of holding up
every row behind it. A row that can no longer be stored (its type was
undeclared or closed to outside senders meanwhile, its address erased) is marked refused with
the reason and logged; the rest of its batch goes on. On PostgreSQL, a drain leaves the rows of
an address that another drain holds an earlier row of (the next drain takes them), so one
person's events are recorded in the order they were accepted.

Waking: each request that committed a row makes sure a drain job is on its way, one wake in
flight per process (`engine.events.delivery.Waker`, sent at most `API_INTAKE_WAKE_LINGER` after
the commit, for all of the process's commits meanwhile) and one job waiting at a time
(`WAKE_KEY`); the job first lets a burst gather (`API_INTAKE_GATHER_SECONDS`, SQLite) so a
stream is drained in large batches. The periodic `api.intake_sweep` wakes it for rows left by
a lost wake (Redis away) or a job that died.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import redis
from flask import current_app
from sqlalchemy import bindparam, delete, desc, func, select, update
from sqlalchemy.exc import InterfaceError, OperationalError

from engine import bulk, events
from engine.api.models import ApiKey, IntakeRow
from engine.contacts import store
from engine.contacts.service import ContactError
from engine.db import db, is_sqlite, utcnow, write
from engine.events.delivery import Waker
from engine.events.types import EventTypeError, all_types, check_external
from engine.jobs import job
from engine.jobs.connection import connection
from engine.jobs.runner import enqueue_once

log = logging.getLogger("magnet.api")

WAKE_KEY = "magnet:api:intake:wake"
WAKE_TTL = 60
JOB_SECONDS = 20.0  # a job hands over to a fresh one after this long
INTAKE = IntakeRow.__table__
C = INTAKE.c
# A stored row keeps only what answers a retry (its ids and the request's hash): the address
# and properties are on the contact and the event now, where erasure finds them.
_STILL_WAITING = select(C.id).where(C.id.between(bindparam("first"), bindparam("last")),
                                    C.processed_at.is_(None))
_MARK_REFUSED = (update(INTAKE).where(C.id == bindparam("row_id"), C.processed_at.is_(None))
                 .values(processed_at=bindparam("now"), refused=bindparam("reason")))


def wake(force: bool = False) -> bool:
    """Make sure a drain job is on its way: enqueued only by the wake that sets `WAKE_KEY`, so
    a burst of requests gives one job (Redis down: the sweep will do it)."""
    try:
        enqueue_once(WAKE_KEY, run_drain, force=force, ttl=WAKE_TTL)
        return True
    except (redis.RedisError, OSError) as exc:
        log.warning("Redis unavailable; accepted events wait for the next sweep: %s", exc)
        return False
    except Exception:  # sent from a background thread too, where nothing else would catch it
        log.exception("Waking the intake's drain failed; the sweep will do it")
        return False


def wake_after_commit() -> None:
    """After a request committed an intake row: `wake()`, shared with this process's other
    requests of the moment, sent `API_INTAKE_WAKE_LINGER` after the first of them (a Redis
    round trip per request cost a quarter of the request)."""
    waker = current_app.extensions.get("magnet.api.waker")
    if waker is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        waker = app.extensions.setdefault("magnet.api.waker", Waker(
            app, wake, float(app.config["API_INTAKE_WAKE_LINGER"])))
    waker()


def run_drain() -> int:
    """The RQ job: let a burst gather, then drain batch after batch until the intake is empty
    or time is up (a fresh job goes on). Returns how many rows it processed."""
    gather = float(current_app.config["API_INTAKE_GATHER_SECONDS"]) if is_sqlite() else 0.0
    if gather > 0:
        time.sleep(gather)  # requests meanwhile find the wake key set and add no job
    try:
        connection().delete(WAKE_KEY)  # rows committed from now on wake a new job
    except (redis.RedisError, OSError):
        pass
    deadline, total = time.monotonic() + JOB_SECONDS, 0
    while time.monotonic() < deadline:
        drained = drain_next()
        if not drained:
            return total
        total += drained
    wake(force=True)
    return total


def drain_next(batch: int | None = None) -> int:
    """Process one batch of waiting intake rows in one transaction; returns how many. When the
    batch fails for a reason other than a known refusal, its rows are tried one by one (see
    `_one_by_one`), so one row that always fails cannot hold up every row behind it."""
    batch = batch or int(current_app.config["API_INTAKE_BATCH"])
    taken: list[int] = []
    try:
        return _drain(batch, taken)
    except Exception as exc:
        if len(taken) <= 1 or passing(exc):
            raise
        log.exception("API intake: a batch of %d events failed; storing them one by one",
                      len(taken))
    return _one_by_one(taken)


def passing(exc: BaseException) -> bool:
    """Whether an error says nothing about the rows: the database busy, away or its connection
    lost (a deadlock, "database is locked"). Rows failing so wait for the next run."""
    return isinstance(exc, (OperationalError, InterfaceError, TimeoutError)) or bool(
        getattr(exc, "connection_invalidated", False))


def _one_by_one(row_ids: list[int]) -> int:
    """Each row in a transaction of its own. A row that fails alone while others are stored is
    marked refused with the error (kept, with its event, for the owner to see in Admin → API
    keys); when every one fails (the database is away), or a row fails for a passing reason,
    the rows not stored stay waiting and the error is raised for the job to be retried."""
    failed: list[tuple[int, Exception]] = []
    for row_id in row_ids:
        try:
            _drain(1, [], only=row_id)
        except Exception as exc:
            failed.append((row_id, exc))
    if len(failed) == len(row_ids):
        raise failed[0][1]
    waiting = [exc for _, exc in failed if passing(exc)]
    failed = [(row_id, exc) for row_id, exc in failed if not passing(exc)]
    if failed:
        with write() as session:
            session.connection().execute(_MARK_REFUSED, [
                {"row_id": row_id, "now": utcnow(),
                 "reason": f"could not be stored ({type(exc).__name__}: {exc})"[:1000]}
                for row_id, exc in failed])
        for row_id, exc in failed:
            log.error("API event %s refused by the drain: %r", row_id, exc)
    if waiting:
        raise waiting[0]
    return len(row_ids)


def _drain(batch: int, taken: list[int], only: int | None = None) -> int:
    """One batch (or the row `only`) in one write transaction; the ids it took go into
    `taken` before anything is written, for `drain_next` to retry them one by one.

    On SQLite the batch is read and its types checked before the write transaction (readers
    never wait for the writer there), and only the rows still waiting when it has begun are
    stored: while it holds the writers' turn, every web process's intake commit waits."""
    query = (select(C.id, C.idempotency_key, C.email, C.type, C.properties, C.occurred_at,
                    C.received_at)
             .where(C.processed_at.is_(None)).order_by(C.id).limit(batch))
    if only is not None:
        query = query.where(C.id == only)
    read_first = is_sqlite()
    if read_first:
        checked, refused = _checked(db.session.execute(query).all())
        if not checked and not refused:
            return 0
    with write() as session:
        connection = session.connection()
        if read_first:  # another drain may have taken some since
            read = [row.id for row, _ in checked] + [row.id for row, _ in refused]
            # A range, not `IN (...)` with a parameter per row: one statement shape to
            # compile, and a scan of the rows just read, which are the oldest waiting.
            still = set(connection.execute(_STILL_WAITING, {
                "first": min(read), "last": max(read)}).scalars())
            checked = [(row, clean) for row, clean in checked if row.id in still]
            refused = [(row, reason) for row, reason in refused if row.id in still]
        else:
            rows = _in_turn(connection,
                            connection.execute(query.with_for_update(skip_locked=True)).all())
            checked, refused = _checked(rows)
        rows = sorted([row for row, _ in checked] + [row for row, _ in refused],
                      key=lambda row: row.id)
        if not rows:
            return 0
        taken.extend(row.id for row in rows)
        stored, refused = _store(checked, refused)
        now = utcnow()
        bulk.update_rows(connection, INTAKE, [  # kept for retries, without the address
            {"id": row.id, "processed_at": now, "event_id": event_id, "contact_id": contact_id,
             "email": "", "properties": {}}
            for row, event_id, contact_id in stored if row.idempotency_key is not None])
        done = [row.id for row, _, _ in stored if row.idempotency_key is None]
        if done:
            connection.execute(delete(INTAKE).where(C.id.in_(done)))
        if refused:
            connection.execute(_MARK_REFUSED, [{"row_id": row.id, "now": now, "reason": reason}
                                               for row, reason in refused])
    for row, reason in refused:
        log.warning("API event %s (%s) refused by the drain: %s", row.id, row.type, reason)
    return len(rows)


def _in_turn(connection: Any, rows: list[Any]) -> list[Any]:
    """The rows to process now: on PostgreSQL, without those of an address whose earlier row
    another drain holds (they wait for the next drain, after it). On SQLite this drain is the
    only writer: every waiting row before its last is its own."""
    if not rows or is_sqlite():
        return rows
    mine = [row.id for row in rows]
    held = dict(connection.execute(
        select(C.email, func.min(C.id))
        .where(C.processed_at.is_(None), C.email.in_({row.email for row in rows}),
               C.id < mine[-1], C.id.not_in(mine))
        .group_by(C.email)).all())
    return [row for row in rows if row.id < held.get(row.email, row.id + 1)]


def _checked(rows: list[Any]) -> tuple[list[tuple[Any, dict[str, Any]]], list[tuple[Any, str]]]:
    """(row, cleaned properties) of each row whose type still takes it, (row, reason) of the
    others. The types are read afresh, not from the request path's memory, so a type
    undeclared since the request was accepted is refused."""
    declared = all_types() if rows else {}
    checked: list[tuple[Any, dict[str, Any]]] = []
    refused: list[tuple[Any, str]] = []
    for row in rows:
        try:
            checked.append((row, check_external(row.type, row.properties, declared)[1]))
        except EventTypeError as exc:  # the type was deleted or closed to outside senders
            refused.append((row, "Its event type was deleted or closed to outside senders "
                                 f"after the event was accepted: {exc}"))
    return checked, refused


def _store(checked: list[tuple[Any, dict[str, Any]]], refused: list[tuple[Any, str]]
           ) -> tuple[list[tuple[Any, int, int]], list[tuple[Any, str]]]:
    """Save the checked rows' contacts, then record their events in one go: (row, event id,
    contact id) of each stored, (row, reason) of each refused (those given, and those whose
    address can no longer be used)."""
    refused = list(refused)
    saved = store.save_addresses([row.email for row, _ in checked], source={"source": "api"},
                                 origin="api")
    kept: list[tuple[Any, int, dict[str, Any]]] = []
    for row, clean in checked:
        outcome = saved[row.email]
        if isinstance(outcome, ContactError):  # an erased address
            refused.append((row, str(outcome)))
        else:
            kept.append((row, outcome.id, clean))
    event_ids = events.record_many([
        {"type": row.type, "contact_id": contact_id, "properties": clean,
         "occurred_at": row.occurred_at or row.received_at} for row, contact_id, clean in kept])
    return ([(row, event_id, contact_id)
             for (row, contact_id, _), event_id in zip(kept, event_ids)], refused)


def waiting() -> int:
    """Accepted events not drained yet."""
    return db.session.scalar(select(func.count()).select_from(INTAKE)
                             .where(C.processed_at.is_(None))) or 0


def refusals(latest: int = 5) -> tuple[int, list[tuple[datetime, str, str, str, str]]]:
    """How many rows the drain refused (and still kept), and the latest few: (when received,
    address, type, reason, the name of the API key that sent it)."""
    count = db.session.scalar(select(func.count()).select_from(INTAKE)
                              .where(C.refused.is_not(None))) or 0
    keys = ApiKey.__table__
    rows = db.session.execute(
        select(C.received_at, C.email, C.type, C.refused, func.coalesce(keys.c.name, ""))
        .outerjoin(keys, keys.c.id == C.api_key_id)
        .where(C.refused.is_not(None)).order_by(desc(C.id)).limit(latest)).all() if count else []
    return count, [tuple(row) for row in rows]


@job("api.intake_sweep", every=15)
def sweep() -> int:
    """Wake the drain when accepted events wait: accepted while Redis was away, or left by a
    job that died. Returns how many wait."""
    if db.session.execute(select(C.id).where(C.processed_at.is_(None)).limit(1)).first() is None:
        return 0
    wake()
    return waiting()
