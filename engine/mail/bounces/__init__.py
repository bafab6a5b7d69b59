"""Bounces and complaints: what comes back after a message left, and what it does.

Three ways in, one way through: a mailbox polled by `magnet mail bounces` (`mailbox.py`), a
local SMTP receiver (`receiver.py`), and ESPs' signed webhooks (`webhooks.py`). DSN and ARF
reports are parsed in `parse.py`, then every notice ends in `record_bounce()`, so the rules are
in one place:
- hard bounce: the address is suppressed for all mail at once (sending again to a dead address
  is what gets a sender blocked) and the contact is marked "bounced";
- soft bounce (mailbox full, greylisted, over quota): suppressed only after
  `MAIL_SOFT_BOUNCE_LIMIT` of them within `MAIL_SOFT_BOUNCE_DAYS`, since most clear by themselves;
- complaint (the recipient pressed "spam"): suppressed for all mail at once and unsubscribed
  from marketing, since Gmail and Yahoo block senders above a 0.3% spam rate.
Each is a `Bounce` row (deduplicated by the provider's notice id) and an event.
"""
from __future__ import annotations

from datetime import timedelta
from email.utils import parseaddr

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from engine import events
from engine.contacts import store
from engine.contacts.models import Contact
from engine.db import db, utcnow, write
from engine.mail import suppression
from engine.mail.models import Bounce, Mailing, MailMessage, MailSend
from engine.mail.unsubscribe import apply_unsubscribe

KINDS = ("hard", "soft", "complaint")
DEFAULTS = {
    "MAIL_SOFT_BOUNCE_LIMIT": 3,  # soft bounces ...
    "MAIL_SOFT_BOUNCE_DAYS": 7,  # ... within this many days suppress an address
    "MAIL_BOUNCE_MAILBOX": "",  # imaps://user@host:993/INBOX or pop3s://user@host:995
    "MAIL_BOUNCE_PASSWORD": "",
    "MAIL_SES_TOPIC_ARN": "",  # the SNS topic whose notifications are accepted
    "MAIL_MAILGUN_SIGNING_KEY": "",
    "MAIL_POSTMARK_WEBHOOK_USER": "",
    "MAIL_POSTMARK_WEBHOOK_PASSWORD": "",
    "MAIL_SENDGRID_PUBLIC_KEY": "",  # base64 DER or PEM, from SendGrid's Mail Settings
}

__all__ = ["DEFAULTS", "KINDS", "find_send", "record_bounce", "record_delivery"]


def _target(email: str, send_id: int | None, message_id: int | None
            ) -> tuple[str, int | None, MailSend | None, MailMessage | None]:
    """The address, contact, send and message a notice is about (ids that do not exist or do
    not match the address are dropped: a report names what it likes)."""
    send = db.session.get(MailSend, send_id) if send_id else None
    message = db.session.get(MailMessage, message_id) if message_id else None
    address = suppression.normalise(email or (send.email if send else "")
                                    or (parseaddr(message.to)[1] if message else ""))
    if send is not None and address and send.email and send.email.lower() != address:
        send = None
    if message is not None and address and address not in message.to.lower():
        message = None
    contact_id = send.contact_id if send else (message.contact_id if message else None)
    if contact_id is None and address:
        contact_id = db.session.scalar(select(Contact.id).where(
            Contact.email == address, Contact.merged_into_id.is_(None)))
    return address, contact_id, send, message


def _mailing(send: MailSend | None) -> dict[str, object]:
    mailing = db.session.get(Mailing, send.mailing_id) if send is not None else None
    return {"mailing": mailing.key if mailing else "", "mailing_id": mailing.id if mailing else 0}


def record_bounce(*, email: str, kind: str, source: str, diagnostic: str = "",
                  send_id: int | None = None, message_id: int | None = None,
                  external_id: str | None = None) -> bool:
    """Store a bounce or complaint and apply its rule (its own `write()`, or the caller's).
    False when `external_id` was seen already (a webhook delivered twice) or the notice names
    no address."""
    if kind not in KINDS:
        raise ValueError(f"unknown bounce kind {kind!r}")
    with write() as session:
        if external_id and session.scalar(
                select(Bounce.id).where(Bounce.external_id == external_id[:200])) is not None:
            return False
        address, contact_id, send, message = _target(email, send_id, message_id)
        if "@" not in address:
            return False
        now = utcnow()
        row = Bounce(email=address[:320], contact_id=contact_id, send_id=send.id if send else None,
                     message_id=message.id if message else None, kind=kind, source=source[:30],
                     diagnostic=diagnostic[:2000], created_at=now,
                     external_id=external_id[:200] if external_id else None)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:  # the same notice, stored by a concurrent request
            return False
        if send is not None and kind != "complaint" and send.bounced_at is None:
            send.bounced_at = now
        contact = session.get(Contact, contact_id) if contact_id else None
        note = f"{source}: {diagnostic}"[:500]
        if kind == "hard":
            suppression.suppress(address, "hard_bounce", note=note, by=source)
            if contact is not None and contact.status == "active":
                contact.status = "bounced"
        elif kind == "soft":
            window = now - timedelta(days=int(current_app.config["MAIL_SOFT_BOUNCE_DAYS"]))
            count = session.scalar(select(func.count(Bounce.id)).where(
                Bounce.email == address, Bounce.kind == "soft", Bounce.created_at >= window))
            if count >= int(current_app.config["MAIL_SOFT_BOUNCE_LIMIT"]):
                suppression.suppress(address, "soft_bounce", note=note, by=source)
        else:
            if contact is not None:
                apply_unsubscribe(contact.id, send.id if send else None, how="complaint")
                store.unsubscribe(contact.id)  # every list, not only the mailing's
            suppression.suppress(address, "complaint", note=note, by=source)
        if contact is not None:
            properties = _mailing(send)
            if kind == "complaint":
                events.record("email_complained", contact_id=contact.id, properties=properties)
            else:
                events.record("email_bounced", contact_id=contact.id, properties={
                    **properties, "kind": kind, "diagnostic": diagnostic[:500]})
    return True


def record_delivery(*, email: str, source: str, send_id: int | None = None,
                    message_id: int | None = None) -> bool:
    """An ESP's "delivered" notice: an `email_delivered` event for the contact, if known."""
    with write():
        _, contact_id, send, _ = _target(email, send_id, message_id)
        if contact_id is None:
            return False
        events.record("email_delivered", contact_id=contact_id, properties=_mailing(send))
    return True


def find_send(email: str, header_message_id: str = "", verp: tuple[str, int] | None = None
              ) -> tuple[int | None, int | None]:
    """(send_id, message_id) of the message a notice is about: from our VERP return path when
    the notice echoes it, else by its Message-ID header, else (None, None) (the address alone
    still finds the contact)."""
    if verp is not None:
        kind, number = verp
        return (number, None) if kind == "s" else (None, number)
    wanted = header_message_id.strip()
    if not wanted:
        return None, None
    if not wanted.startswith("<"):
        wanted = f"<{wanted}>"
    address = suppression.normalise(email)
    send = db.session.scalar(select(MailSend.id).where(
        MailSend.message_id == wanted, func.lower(MailSend.email) == address).limit(1))
    if send is not None:
        return send, None
    message = db.session.scalar(select(MailMessage.id).where(
        MailMessage.message_id == wanted).limit(1))
    return None, message
