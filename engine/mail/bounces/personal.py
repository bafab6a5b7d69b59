"""The bounces a person had, in their GDPR export; erased with them (their suppression stays,
hashed, in `engine.mail.suppression`, which is what still stops mail to them)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_, select

from engine.contacts.gdpr import Person, PersonalData
from engine.db import db
from engine.mail.models import Bounce


def _of(person: Person) -> Any:
    return or_(Bounce.contact_id.in_(person.contact_ids),
               Bounce.email.in_([email.lower() for email in person.emails]))


def _export(person: Person) -> list[dict[str, Any]]:
    return [{"email": row.email, "kind": row.kind, "source": row.source,
             "diagnostic": row.diagnostic, "at": row.created_at.isoformat()}
            for row in db.session.scalars(select(Bounce).where(_of(person)).order_by(Bounce.id))]


def _erase(person: Person) -> None:
    db.session.execute(delete(Bounce).where(_of(person)))


PERSONAL_DATA = PersonalData("mail_bounces", export=_export, erase=_erase)
