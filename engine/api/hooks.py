"""The API as a built-in plugin: its edge route, the intake's sweep, the job that forgets
processed intake rows, and the intake's rows in a person's export and erasure."""
from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_, select

from engine.api import drain, endpoint, intake
from engine.api.models import IntakeRow
from engine.contacts.gdpr import Person, PersonalData
from engine.db import db
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


def _erase(person: Person) -> None:
    """Every row about them goes: a waiting one would otherwise make them a contact again."""
    db.session.execute(delete(IntakeRow).where(_theirs(person)))


@hookimpl
def register_personal_data() -> list[Any]:
    return [PersonalData("api_intake", export=_export, erase=_erase)]
