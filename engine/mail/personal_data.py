"""The personal data of mail's sending side, for GDPR export and erasure: a person's suppression
entry and the mailings sent to them (their bounces are `engine.mail.bounces.personal`'s).

Erasure keeps what makes the figures and the law work, without who it was:
- the suppression entry stays, as a hash of the address (`suppression.erase`): it must still
  stop mail to them, and it no longer names them;
- sends keep their status and dates (a mailing's report stays right) but lose the address, and
  the error text, which may quote it.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from engine.contacts.gdpr import Person, PersonalData
from engine.db import db
from engine.mail import suppression
from engine.mail.models import Mailing, MailSend


def _iso(value: Any) -> Any:
    return value.isoformat() if value is not None else None


def _export(person: Person) -> dict[str, Any]:
    entries = [suppression.entry(email) for email in person.emails if email]
    sends = db.session.execute(
        select(MailSend, Mailing.key).join(Mailing, Mailing.id == MailSend.mailing_id)
        .where(MailSend.contact_id.in_(person.contact_ids)).order_by(MailSend.id))
    return {
        "suppression": [{"email": row.email, "reason": row.reason, "scope": row.scope,
                         "since": _iso(row.created_at), "until": _iso(row.expires_at),
                         "note": row.note} for row in entries if row is not None],
        "sends": [{"mailing": key, "email": send.email, "status": send.status,
                   "sent_at": _iso(send.sent_at), "opened_at": _iso(send.opened_at),
                   "clicked_at": _iso(send.clicked_at), "bounced_at": _iso(send.bounced_at)}
                  for send, key in sends],
    }


def _erase(person: Person) -> None:
    suppression.erase(person.emails)
    db.session.execute(update(MailSend).where(MailSend.contact_id.in_(person.contact_ids))
                       .values(email="", error=""),
                       execution_options={"synchronize_session": False})


PERSONAL_DATA = PersonalData("email_delivery", export=_export, erase=_erase)
