"""Where the newsletters plugin keeps data about people: which campaigns they were in, with the
variant and due time they were given (the messages themselves are the mail core's)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from engine.contacts.gdpr import Person, PersonalData
from engine.db import db
from plugins.newsletters.models import Campaign, Recipient


def _export(person: Person) -> list[dict[str, Any]]:
    rows = db.session.execute(select(Recipient, Campaign.name).join(
        Campaign, Campaign.id == Recipient.campaign_id).where(
        Recipient.contact_id.in_(person.contact_ids)).order_by(Recipient.id)).all()
    return [{"campaign": name, "variant": r.variant.upper(), "status": r.status,
             "due_at": r.due_at.isoformat() if r.due_at else None,
             "sent_at_their_best_hour": r.optimised} for r, name in rows]


def _erase(person: Person) -> None:
    db.session.execute(delete(Recipient).where(
        Recipient.contact_id.in_(list(person.contact_ids))))


recipients = PersonalData("newsletters", _export, _erase)
