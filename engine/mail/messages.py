"""The single-message log's `mail.send` job: delivers a batch of logged messages over one
connection, once each (the double opt-in, notifications, invitations: transactional mail).

Each message is a row of the mail log that moves `queued` -> `sending` -> `sent` (or `failed`,
or `suppressed` when its address hard-bounced or complained before).
A batch claims its rows in one write before it opens the SMTP connection, and marks each one
sent in its own short write right after the server accepted it. The Message-ID was stored when
the message was queued, so whatever happens between SMTP and that mark (a crash, a database
that refuses the write) the retry sends the very same message, which receivers recognise.
What each failure does:
- a 5xx refusing the recipient (or an address the server cannot take): the row is `failed`
  and the batch goes on;
- a 4xx, a refusal of us (MAIL FROM, DATA), a refused or lost connection, any other error: the
  rows not yet accepted go back to `queued` and the job raises, so the outbox retries it with
  back-off; the hour's send allowance used up puts the batch off without counting an attempt;
- the worker dies: its rows stay `sending`; once their claim is older than `STALE_CLAIM` the
  outbox's retry sends them again (at most the message in flight was sent before: SMTP allows
  no better).
"""
from __future__ import annotations

import logging
import smtplib
from datetime import timedelta
from email.utils import getaddresses
from typing import Any

from sqlalchemy import func, or_, select, update

from engine import events
from engine.contacts.gdpr import Person, PersonalData
from engine.contacts.models import Contact
from engine.db import db, utcnow, write
from engine.jobs import job, outbox
from engine.mail import dkim, ratelimit, refusals, suppression
from engine.mail.models import MailMessage
from engine.mail.tokens import bounce_address
from engine.mail.transport import build, open_transport

log = logging.getLogger("magnet.mail")

TABLE = MailMessage.__table__
# A claim older than this belongs to a worker that died: longer than one SMTP exchange can take
# (smtplib's timeout is 30 s), shorter than the outbox's lease after which the job is retried.
STALE_CLAIM = timedelta(seconds=120)


class ClaimedElsewhere(RuntimeError):
    """Some of the batch's messages are being sent by another worker right now: try later."""


@job("mail.send", queue="mail")
def send_messages(message_ids: list[int]) -> int:
    """Send the batch's messages that nobody sent or is sending; returns how many were sent."""
    rows = _not_suppressed(_claim(message_ids))
    sent = 0
    if rows:
        signer = dkim.load_signer()
        limiter = ratelimit.Limiter.from_settings()  # the provider's cap counts all mail
        index = 0
        try:
            with open_transport() as transport:
                for index, row in enumerate(rows):
                    limiter.wait()
                    try:
                        transport.send_raw(bounce_address("m", row.id),
                                           [address for _, address in getaddresses([row.to])],
                                           dkim.sign_message(build(row), signer))
                    except (smtplib.SMTPException, refusals.NotDeliverable) as exc:
                        if refusals.of(exc) not in (refusals.Outcome.GONE,
                                                    refusals.Outcome.REFUSED):
                            raise
                        _finish(row.id, "failed", str(exc)[:2000])  # this one; go on
                        continue
                    index += 1  # accepted: never given back
                    _finish(row.id, "sent", "", sent=row)
                    sent += 1
        except ratelimit.RateLimited as exc:
            _give_back(rows[index:])
            raise outbox.RetryLater(str(exc), exc.retry_after) from exc
        except BaseException:  # the server, the connection, a key file: the rest waits
            _give_back(rows[index:])
            raise
    if len(rows) < len(message_ids) and _still_sending(message_ids):
        raise ClaimedElsewhere("messages of this batch are being sent by another worker")
    return sent


def _claim(message_ids: list[int]) -> list[Any]:
    """Take the batch's unsent messages: queued ones, and those a dead worker left `sending`."""
    now = utcnow()
    with write() as session:
        return sorted(session.connection().execute(
            update(TABLE)
            .where(TABLE.c.id.in_(message_ids), or_(
                TABLE.c.status == "queued",
                (TABLE.c.status == "sending") & (TABLE.c.claimed_at < now - STALE_CLAIM)))
            .values(status="sending", claimed_at=now, attempts=TABLE.c.attempts + 1)
            .returning(TABLE.c.id, TABLE.c.to, TABLE.c.subject, TABLE.c.html, TABLE.c.text,
                       TABLE.c.headers, TABLE.c.message_id, TABLE.c.contact_id)).all(),
            key=lambda row: row.id)


def _not_suppressed(rows: list[Any]) -> list[Any]:
    """Transactional mail reaches people who unsubscribed from marketing, never an address
    that hard-bounced or complained: those rows are marked `suppressed`, unsent."""
    stopped = suppression.blocked([address for row in rows for _, address in
                                   getaddresses([row.to])], marketing=False)
    if not stopped:
        return rows
    blocked = [row.id for row in rows if any(
        address.lower() in stopped for _, address in getaddresses([row.to]))]
    with write() as session:
        session.connection().execute(update(TABLE).where(TABLE.c.id.in_(blocked)).values(
            status="suppressed", error="on the suppression list (bounced or complained)"))
    return [row for row in rows if row.id not in set(blocked)]


def _still_sending(message_ids: list[int]) -> bool:
    return db.session.execute(select(TABLE.c.id).where(
        TABLE.c.id.in_(message_ids), TABLE.c.status == "sending").limit(1)).first() is not None


def _finish(message_id: int, status: str, error: str, sent: Any = None) -> None:
    """Mark a message; a message sent to a contact (not one about them, such as the owner's
    notification of their submission) is an `email_sent` event of theirs."""
    with write() as session:
        connection = session.connection()
        connection.execute(update(TABLE).where(TABLE.c.id == message_id).values(
            status=status, error=error, sent_at=utcnow() if status == "sent" else None))
        if sent is not None and sent.contact_id and status == "sent" and connection.execute(
                select(Contact.email).where(Contact.id == sent.contact_id)).scalar() == sent.to:
            events.record("email_sent", contact_id=sent.contact_id,
                          properties={"subject": sent.subject[:200],
                                      "message_id": sent.message_id})
    if status == "failed":
        log.warning("mail %s refused: %s", message_id, error)


def _give_back(rows: list[Any]) -> None:
    """Rows the server has not accepted go back to `queued` for the outbox's retry."""
    with write() as session:
        session.connection().execute(update(TABLE).where(
            TABLE.c.id.in_([row.id for row in rows]), TABLE.c.status == "sending").values(
            status="queued"))


def _of(person: Person) -> Any:
    """A person's messages: those about their contacts, or to any of their addresses."""
    addresses = [email.lower() for email in person.emails]
    return or_(TABLE.c.contact_id.in_(person.contact_ids), func.lower(TABLE.c.to).in_(addresses))


def _export(person: Person) -> list[dict[str, Any]]:
    return [{"to": row.to, "subject": row.subject, "text": row.text, "status": row.status,
             "queued_at": row.created_at.isoformat(),
             "sent_at": row.sent_at.isoformat() if row.sent_at else None}
            for row in db.session.execute(select(TABLE).where(_of(person)).order_by(TABLE.c.id))]


def _erase(person: Person) -> None:
    """The log keeps that a message was sent, not to whom or what it said."""
    db.session.execute(update(TABLE).where(_of(person)).values(
        to="erased@erased.invalid", subject="", html="", text="", headers={}, error=""))


PERSONAL_DATA = PersonalData("mail", export=_export, erase=_erase)
