"""The API as a built-in plugin: its edge route, the intake's sweep, the job that forgets
processed intake rows, and the intake's rows in a person's export and erasure."""
from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, or_, select, update

from engine.api import drain, endpoint, intake
from engine.api.models import IntakeRow
from engine.contacts.gdpr import Person, PersonalData
from engine.db import db, utcnow
from engine.plugins import hookimpl


@hookimpl
def register_edge_routes() -> list[Any]:
    return [endpoint.ROUTE, *endpoint.OTHER_METHODS]


@hookimpl
def register_jobs() -> list[Any]:
    return [intake.forget_idempotency_keys, drain.sweep]


def _theirs(person: Person) -> Any:
    """Rows about the person: waiting or refused ones by address, stored ones by contact."""
    return or_(IntakeRow.email.in_(person.emails), IntakeRow.contact_id.in_(person.contact_ids))


def _export(person: Person) -> list[dict[str, Any]]:
    rows = db.session.execute(select(IntakeRow.type, IntakeRow.properties, IntakeRow.received_at,
                                     IntakeRow.processed_at, IntakeRow.refused)
                              .where(_theirs(person)).order_by(IntakeRow.id))
    return [{"type": row.type, "properties": row.properties,
             "received_at": row.received_at.isoformat(),
             "status": ("refused" if row.refused else
                        "stored" if row.processed_at else "waiting"),
             **({"refused": row.refused} if row.refused else {})} for row in rows]


ERASED = "The person this event was about was erased (GDPR): it is not stored."


def _erase(person: Person) -> None:
    """No row keeps anything about them, and none makes them a contact again: a waiting one
    would when drained, and a retry of a request with an idempotency key would if its row were
    gone. So rows with a key stay, emptied and refused, until the key is forgotten (the retry
    is answered "refused"); the others are deleted."""
    theirs = _theirs(person)
    db.session.execute(update(IntakeRow).where(theirs, IntakeRow.idempotency_key.is_not(None))
                       .values(email="", properties={}, request_hash=None, event_id=None,
                               contact_id=None, refused=ERASED,
                               processed_at=func.coalesce(IntakeRow.processed_at, utcnow())))
    db.session.execute(delete(IntakeRow).where(theirs))


@hookimpl
def register_personal_data() -> list[Any]:
    return [PersonalData("api_intake", export=_export, erase=_erase)]
