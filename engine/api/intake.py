"""Events from outside, for a person named by their email address: checked, then stored.

An unknown address becomes a contact (consent unknown: an integration saying someone bought
something is no permission to email them). The event type must be declared and open to
outside senders, and its properties must match their declared types (`engine.events.types`).
An idempotency key makes a retried request store nothing new and answer as the first did; the
same key with a different event is refused, as a mistake of the sender's (`IdempotencyConflict`).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from engine import events
from engine.api import keys
from engine.api.models import ApiKey, IdempotentRequest
from engine.contacts import store
from engine.contacts.service import ContactError, normalise_email
from engine.db import db, utcnow, write
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


def record_external(email: Any, type_name: Any, properties: Any = None, occurred_at: Any = None,
                    *, idempotency_key: str | None = None, api_key_id: int | None = None,
                    source: str = "api") -> Recorded:
    """Check and store one event from outside; IntakeError when it is refused (nothing
    stored). With an idempotency key (only with an API key), a repeat returns the first
    answer, marked `duplicate`."""
    address, name, clean, moment = check(email, type_name, properties, occurred_at,
                                         idempotency_key)
    for attempt in range(2):
        try:
            return _store(address, name, clean, moment, idempotency_key, api_key_id, source,
                          fingerprint(address, name, clean, moment))
        except IntegrityError:  # the same key, stored by a concurrent request
            if attempt:
                raise
    raise AssertionError("unreachable")


def fingerprint(address: str, name: str, clean: dict[str, Any], moment: datetime | None) -> str:
    """The SHA-256 of an event as checked (canonical JSON: sorted keys, the time in UTC), kept
    with its idempotency key: a retry of the same event has the same one whatever the spacing,
    key order or time zone it was written in."""
    canonical = json.dumps({"email": address, "type": name, "properties": clean,
                            "occurred_at": moment.astimezone(UTC).isoformat() if moment else None},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


_EARLIER = IdempotentRequest.__table__


def _earlier(api_key_id: int, idempotency_key: str, digest: str) -> Recorded | None:
    """The answer already given to this key, or None. Read before the write transaction, so
    SQLite's write lock is not held for it; two requests with one key at the same moment both
    find none, and the unique key lets only one of them store (the other retries, and finds it
    here)."""
    earlier = db.session.execute(
        select(_EARLIER.c.event_id, _EARLIER.c.contact_id, _EARLIER.c.request_hash)
        .where(_EARLIER.c.api_key_id == api_key_id, _EARLIER.c.key == idempotency_key)).first()
    if earlier is None:
        return None
    if earlier.request_hash not in (None, digest):
        raise IdempotencyConflict(
            f"The idempotency key “{idempotency_key}” was used for a different event: a retry "
            "must send the same event. Use a new key for a new event.")
    return Recorded(earlier.event_id, earlier.contact_id, False, duplicate=True)


def _store(address: str, name: str, clean: dict[str, Any], moment: datetime | None,
           idempotency_key: str | None, api_key_id: int | None, source: str,
           digest: str) -> Recorded:
    """The contact, the event and the idempotency key in one short write transaction: Core
    statements only, and nothing read in it that could be read before it."""
    keyed = idempotency_key is not None and api_key_id is not None
    if keyed:
        earlier = _earlier(api_key_id, idempotency_key, digest)  # type: ignore[arg-type]
        if earlier is not None:
            return earlier
    with write() as session:
        try:
            saved = store.save(address, {}, source={"source": source}, origin=source)
        except ContactError as exc:
            raise IntakeError(f"“email”: {exc}") from None
        event_id = events.record(name, contact_id=saved.id, properties=clean, occurred_at=moment)
        connection = session.connection()
        if keyed:
            connection.execute(_EARLIER.insert(), {
                "api_key_id": api_key_id, "key": idempotency_key, "event_id": event_id,
                "contact_id": saved.id, "request_hash": digest, "created_at": utcnow()})
        if api_key_id is not None and keys.due_for_use_mark(api_key_id):
            connection.execute(ApiKey.__table__.update().where(ApiKey.id == api_key_id)
                               .values(last_used_at=utcnow()))
    return Recorded(event_id, saved.id, saved.created)


@job("api.forget_idempotency_keys", every=3600)
def forget_idempotency_keys() -> int:
    """Idempotency keys are kept for `API_IDEMPOTENCY_SECONDS`, then forgotten."""
    cutoff = utcnow() - timedelta(seconds=int(current_app.config["API_IDEMPOTENCY_SECONDS"]))
    with write() as session:
        return session.execute(delete(IdempotentRequest).where(
            IdempotentRequest.created_at < cutoff)).rowcount
