"""Events from outside, for a person named by their email address: checked, then kept.

The event type must be declared and open to outside senders, and its properties must match
their declared types (`engine.events.types`). An unknown address becomes a contact (consent
unknown: an integration saying someone bought something is no permission to email them).

The API (`accept`) answers once the checked event is in the intake, a single INSERT; the drain
(`engine.api.drain`) stores contacts and events from it in batches. An idempotency key makes a
retried request store nothing new and answer as the first did; the same key with a different
event is refused, as a mistake of the sender's (`IdempotencyConflict`). `magnet events record`
stores at once (`record_external`): a script waits for its one event and wants its ids.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from engine import events
from engine.api import drain, keys
from engine.api.group_commit import GroupCommit
from engine.api.models import ApiKey, IntakeRow
from engine.contacts import store
from engine.contacts.service import ContactError, normalise_email
from engine.db import (
    db,
    driver_binds,
    driver_transaction,
    locking,
    own_driver_connection,
    utcnow,
    write,
)
from engine.events.types import EventType, EventTypeError, all_types, check_external
from engine.jobs import job

FUTURE_SLACK = timedelta(minutes=5)  # clocks differ; an event from the future does not
TYPES_TTL = 2.0  # seconds a process trusts the declared types it read
MAX_KEY = 200


class IntakeError(ValueError):
    """What is wrong with an event sent from outside, in words fit for the sender."""


class IdempotencyConflict(IntakeError):
    """An idempotency key reused with a different event: retrying cannot fix it (HTTP 422)."""


@dataclass(frozen=True)
class Accepted:
    """The API's answer: the intake row's id and how far it has got. A new event is
    "accepted" (waiting for the drain); a repeat of an idempotency key answers with the first
    request's row, "stored" once the drain has made its event (with its and the contact's
    ids), or "refused" with the reason the drain could not."""
    intake_id: int
    duplicate: bool = False
    event_id: int | None = None
    contact_id: int | None = None
    refused: str | None = None

    @property
    def status(self) -> str:
        if self.refused is not None:
            return "refused"
        return "stored" if self.event_id is not None else "accepted"

    def as_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"id": self.intake_id, "status": self.status,
                                  "duplicate": self.duplicate}
        if self.event_id is not None:
            answer.update(event_id=self.event_id, contact_id=self.contact_id)
        if self.refused is not None:
            answer["error"] = self.refused
        return answer


@dataclass(frozen=True)
class Recorded:
    event_id: int
    contact_id: int
    created_contact: bool
    duplicate: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"id": self.event_id, "contact_id": self.contact_id,
                "created_contact": self.created_contact, "duplicate": self.duplicate}


def declared_types() -> dict[str, EventType]:
    """`all_types()`, remembered for `TYPES_TTL` seconds (it is read on every API request)."""
    remembered = current_app.extensions.get("magnet.api.types")
    now = time.monotonic()
    if remembered is None or now - remembered[1] >= TYPES_TTL:
        remembered = current_app.extensions["magnet.api.types"] = (all_types(), now)
    return remembered[0]


def forget_types() -> None:
    """Read the declared types afresh (after an owner changed them in this process)."""
    current_app.extensions.pop("magnet.api.types", None)


def check(email: Any, type_name: Any, properties: Any, occurred_at: Any,
          idempotency_key: Any = None) -> tuple[str, str, dict[str, Any], datetime | None]:
    """The cleaned (email, type, properties, time) of an event, or IntakeError."""
    if type_name is None:
        raise IntakeError("“type” is required: the event's type, e.g. purchase (see "
                          "Admin → Event types).")
    if not isinstance(email, str):
        raise IntakeError("“email” is required: the address of the person the event is about.")
    try:
        address = normalise_email(email)
    except ContactError as exc:
        raise IntakeError(f"“email”: {exc}") from None
    try:
        declared, clean = check_external(type_name, properties, declared_types())
    except EventTypeError as exc:
        raise IntakeError(str(exc)) from None
    moment = _moment(occurred_at)
    if idempotency_key is not None and (not isinstance(idempotency_key, str) or not
                                        0 < len(idempotency_key) <= MAX_KEY or
                                        not idempotency_key.isprintable()):
        raise IntakeError(f"An idempotency key is 1 to {MAX_KEY} printable characters.")
    return address, declared.name, clean, moment


def _moment(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise IntakeError("“occurred_at” is a time with its zone, e.g. 2026-12-01T09:30:00Z.")
    if moment > utcnow() + FUTURE_SLACK:
        raise IntakeError("“occurred_at” is in the future.")
    return moment


def record_external(email: Any, type_name: Any, properties: Any = None,
                    occurred_at: Any = None, *, source: str = "cli") -> Recorded:
    """Check and store one event at once (`magnet events record`): the contact and the event
    in one write transaction; IntakeError when it is refused (nothing stored)."""
    address, name, clean, moment = check(email, type_name, properties, occurred_at)
    with write():
        try:
            saved = store.save(address, {}, source={"source": source}, origin=source)
        except ContactError as exc:
            raise IntakeError(f"“email”: {exc}") from None
        event_id = events.record(name, contact_id=saved.id, properties=clean, occurred_at=moment)
    return Recorded(event_id, saved.id, saved.created)


def fingerprint(address: str, name: str, clean: dict[str, Any], moment: datetime | None) -> str:
    """The SHA-256 of an event as checked (canonical JSON: sorted keys, the time in UTC), kept
    with its idempotency key: a retry of the same event has the same one whatever the spacing,
    key order or time zone it was written in."""
    canonical = json.dumps({"email": address, "type": name, "properties": clean,
                            "occurred_at": moment.astimezone(UTC).isoformat() if moment else None},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


INTAKE = IntakeRow.__table__
# INSERT … ON CONFLICT (api key, idempotency key) DO NOTHING RETURNING id, in each dialect's
# words: one statement that keeps a new event, or keeps nothing for a repeat (and returns no
# id). Rows without an idempotency key never conflict (NULLs are distinct in a unique key).
_INSERT_ONCE = {
    dialect.__name__.rsplit(".", 1)[-1]: dialect.insert(INTAKE)
    .on_conflict_do_nothing(index_elements=["api_key_id", "idempotency_key"])
    .returning(INTAKE.c.id)
    for dialect in (sqlite, postgresql)}


def accept(email: Any, type_name: Any, properties: Any = None, occurred_at: Any = None, *,
           idempotency_key: str | None = None, api_key_id: int | None = None) -> Accepted:
    """Check an event from the API and keep it in the intake for the drain: one INSERT in one
    short write transaction (on SQLite shared with the process's concurrent requests), then a
    wake for the drain. IntakeError when it is refused
    (nothing kept); a repeat of an idempotency key answers with the first request's row, and
    the same key with a different event is an `IdempotencyConflict`."""
    try:
        address, name, clean, moment = check(email, type_name, properties, occurred_at,
                                             idempotency_key)
    except IntakeError:
        earlier = _retry_of_accepted(email, type_name, properties, occurred_at,
                                     idempotency_key, api_key_id)
        if earlier is None:
            raise
        return earlier
    digest = fingerprint(address, name, clean, moment)
    keyed = idempotency_key if api_key_id is not None else None
    row = {"api_key_id": api_key_id, "idempotency_key": keyed, "request_hash": digest,
           "email": address, "type": name, "properties": clean, "occurred_at": moment,
           "received_at": utcnow()}
    mark_use = api_key_id is not None and keys.due_for_use_mark(api_key_id)
    if not mark_use and db.engine.dialect.name == "sqlite":
        new_id = _insert_on_sqlite(row)
        if new_id is not None:
            drain.wake_after_commit()
            return Accepted(new_id)
    for _ in range(2):  # the earlier row can be forgotten between the INSERT and the look-up
        # A Core transaction of its own, not `write()`: the session's bookkeeping (ending its
        # read transaction, expiring objects, commit events) cost as much as the INSERT.
        with locking(), db.engine.begin() as connection:
            new_id = connection.execute(_INSERT_ONCE[db.engine.dialect.name], row).scalar()
            earlier = None if new_id is not None else _earlier(
                connection, api_key_id, keyed, digest)  # type: ignore[arg-type]
            if mark_use:
                connection.execute(ApiKey.__table__.update().where(ApiKey.id == api_key_id)
                                   .values(last_used_at=utcnow()))
        if new_id is not None:
            drain.wake_after_commit()
            return Accepted(int(new_id))
        if earlier is not None:
            return earlier
    raise IntakeError("The idempotency key was being forgotten as it was sent: send it again.")


_SQLITE_COLUMNS = ("api_key_id", "idempotency_key", "request_hash", "email", "type",
                   "properties", "occurred_at", "received_at")
_INSERT_ONCE_SQLITE = (
    f"INSERT INTO {INTAKE.name} ({', '.join(_SQLITE_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_SQLITE_COLUMNS))}) "
    "ON CONFLICT (api_key_id, idempotency_key) DO NOTHING RETURNING id")


def _insert_on_sqlite(row: dict[str, Any]) -> int | None:
    """`_INSERT_ONCE` straight on SQLite's driver (`engine.db.driver_transaction`: the
    writer's turn, `BEGIN IMMEDIATE`, the statement, `COMMIT`), where SQLAlchemy's transaction
    and statement machinery cost more than the INSERT, in a transaction shared with this
    process's other requests of the moment (`engine.api.group_commit`), on a driver connection
    the process keeps for it (with one checked out of the pool and back in, with its rollback,
    for each commit, the web side took 0.43 ms of CPU a request against 0.37-0.39 ms). The new
    row's id, or None for a repeat of an idempotency key (which `accept` then answers the
    usual way)."""
    binds = driver_binds(tuple(INTAKE.c[name] for name in _SQLITE_COLUMNS), db.engine.dialect)
    return _group_commit().write(
        tuple(bind(row[name]) for bind, name in zip(binds, _SQLITE_COLUMNS)))


def _group_commit() -> GroupCommit:
    """This app's intake writer (one per app: each has its own database)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    found = app.extensions.get("magnet.api.group_commit")
    if found is None:
        engine = db.engine
        # Each process's own driver connection, by process id: a process forked after writing
        # makes its own, and leaves the one it inherited alone (closing a SQLite connection
        # carried across a fork can upset the parent's locks).
        held: dict[int, Any] = {}

        @contextmanager
        def transaction() -> Iterator[Any]:
            raw = held.get(os.getpid())
            if raw is None:
                raw = held[os.getpid()] = own_driver_connection(engine)
            with driver_transaction(engine, raw):
                yield raw
        found = app.extensions.setdefault("magnet.api.group_commit",
                                          GroupCommit(transaction, _insert_one))
    return found


def _insert_one(raw: Any, values: tuple[Any, ...]) -> int | None:
    found = raw.execute(_INSERT_ONCE_SQLITE, values).fetchone()
    return None if found is None else int(found[0])


def _retry_of_accepted(email: Any, type_name: Any, properties: Any, occurred_at: Any,
                       idempotency_key: Any, api_key_id: int | None) -> Accepted | None:
    """A retry, byte for byte, of a request accepted before whose type was undeclared or
    closed to outside senders since: answered as the first was (a retry must get the first
    answer whatever changed meanwhile), not refused for a type it was accepted with. Told by the
    fingerprint of the event as sent, which is the one kept when its properties needed no
    conversion; otherwise None, and the refusal stands."""
    if api_key_id is None or not isinstance(idempotency_key, str) or not isinstance(
            type_name, str) or not isinstance(properties, dict | None):
        return None
    try:
        digest = fingerprint(normalise_email(email), type_name, properties or {},
                             _moment(occurred_at))
    except (ContactError, IntakeError, TypeError, ValueError):
        return None
    with db.engine.connect() as connection:
        found = _row_of_key(connection, api_key_id, idempotency_key)
    if found is None or found.request_hash != digest:
        return None
    return Accepted(found.id, True, found.event_id, found.contact_id, found.refused)


def _row_of_key(connection: Any, api_key_id: int, idempotency_key: str) -> Any:
    """The intake row kept for this API key's idempotency key, or None."""
    return connection.execute(
        select(INTAKE.c.id, INTAKE.c.request_hash, INTAKE.c.event_id, INTAKE.c.contact_id,
               INTAKE.c.refused)
        .where(INTAKE.c.api_key_id == api_key_id,
               INTAKE.c.idempotency_key == idempotency_key)).first()


def _earlier(connection: Any, api_key_id: int, idempotency_key: str,
             digest: str) -> Accepted | None:
    """The first request's row for this key (the INSERT found it), or None if it is gone."""
    earlier = _row_of_key(connection, api_key_id, idempotency_key)
    if earlier is None:
        return None
    if earlier.request_hash not in (None, digest):
        raise IdempotencyConflict(
            f"The idempotency key “{idempotency_key}” was used for a different event: a retry "
            "must send the same event. Use a new key for a new event.")
    return Accepted(earlier.id, True, earlier.event_id, earlier.contact_id, earlier.refused)


@job("api.forget_idempotency_keys", every=3600)
def forget_idempotency_keys() -> int:
    """Rows the drain has processed are kept for `API_IDEMPOTENCY_SECONDS` (the answer to a
    retried idempotency key; the reason one was refused, for the admin), then forgotten."""
    cutoff = utcnow() - timedelta(seconds=int(current_app.config["API_IDEMPOTENCY_SECONDS"]))
    with write() as session:
        return session.execute(delete(INTAKE).where(INTAKE.c.processed_at < cutoff)).rowcount
