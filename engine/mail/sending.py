"""Sending a mailing to many: the send ledger, batches, and exactly once per recipient.

`enqueue(mailing, contact_ids)` (inside the caller's `write()`) adds one ledger row per
recipient - unique per (mailing, contact, occurrence), so queueing the same people twice queues
nobody twice - and one outbox row per `BATCH` of them. A worker's `mail.send_mailing` job then:

1. claims its rows (`queued` -> `sending`, one UPDATE that only matches unclaimed rows, or rows
   whose claim is older than `STALE_CLAIM`: their worker died);
2. drops those it must not send - suppressed addresses, people who left the mailing's list,
   merged or erased contacts - which is where an unsubscribe is honoured at once;
3. compiles the template once, opens one SMTP connection, and for each recipient renders,
   adds the tracking and unsubscribe parts, signs (DKIM), waits for the global rate limit,
   sends with its own VERP return path, and marks the row `sent` with its `email_sent` event
   in one short write right after the server accepted it.

So a retried job, an overlapping run or a restarted worker never sends to someone already
marked; a `kill -9` between the server's "250" and the mark sends that one message again (SMTP
allows no better), and nobody is lost: the claim goes stale and the outbox retries the batch.
4xx or a lost connection gives the unsent rows back and raises (the outbox retries with
back-off); 5xx for a recipient marks that row `failed` and counts as a hard bounce.
"""
from __future__ import annotations

import logging
import smtplib
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, or_, select, update
from sqlalchemy.orm import selectinload

from engine import events
from engine.contacts.models import Contact, Subscription
from engine.contacts.store import dialect_insert
from engine.db import db, locking, utcnow, write
from engine.jobs import job, outbox
from engine.mail import bounces, dkim, ratelimit, rendering, suppression, tokens, tracking
from engine.mail.compose import Envelope, compose
from engine.mail.models import EmailTemplate, Mailing, MailSend
from engine.mail.service import new_message_id
from engine.mail.transport import open_transport
from engine.mail.unsubscribe import list_headers

log = logging.getLogger("magnet.mail")

SENDS = MailSend.__table__
BATCH = 250  # recipients per job: one template compilation and one SMTP connection serve them
# A claim older than this belongs to a worker that died (the outbox's lease is longer).
STALE_CLAIM = timedelta(seconds=120)
ANNOUNCE_EVERY = 50  # sends whose `email_sent` events are written together


class MailingError(ValueError):
    """A mailing that cannot be sent as asked (no template, a template that does not compile)."""


def mailing(key: str, *, template_id: int, **fields: Any) -> Mailing:
    """The mailing with this key, created on first use (inside `write()`); `fields` are
    `Mailing`'s columns (subject, list_slug, marketing, track_opens, track_clicks, utm,
    context, from_name) and update an existing one."""
    if db.session.get(EmailTemplate, template_id) is None:
        raise MailingError(f"no email template {template_id}")
    found = db.session.scalar(select(Mailing).where(Mailing.key == key))
    if found is None:
        found = Mailing(key=key[:200], template_id=template_id, created_at=utcnow())
        db.session.add(found)
    found.template_id = template_id
    for name, value in fields.items():
        if not hasattr(Mailing, name) or name in ("id", "key", "created_at"):
            raise TypeError(f"Mailing has no field {name!r}")
        setattr(found, name, value)
    db.session.flush()
    return found


def enqueue(target: Mailing, contact_ids: Iterable[int], *, occurrence: str = "") -> int:
    """Queue `target` to these contacts (inside `write()`); returns how many were new. Contacts
    it was already queued to (for this occurrence) are left alone, sent or not."""
    ids = sorted({int(c) for c in contact_ids})
    insert = dialect_insert(db.session.get_bind().dialect.name)
    connection = db.session.connection()
    now, queued = utcnow(), []
    for start in range(0, len(ids), 1000):
        rows = [{"mailing_id": target.id, "contact_id": cid, "occurrence": occurrence[:60],
                 "email": "", "status": "queued", "message_id": "", "attempts": 0,
                 "error": "", "created_at": now} for cid in ids[start:start + 1000]]
        queued += connection.execute(insert(SENDS).values(rows).on_conflict_do_nothing(
            index_elements=["mailing_id", "contact_id", "occurrence"])
            .returning(SENDS.c.id)).scalars().all()
    queued.sort()
    for start in range(0, len(queued), BATCH):
        outbox.add("mail.send_mailing", send_ids=queued[start:start + BATCH])
    return len(queued)


@job("mail.send_mailing", queue="mail")
def send_batch(send_ids: list[int]) -> int:
    """Send one batch of a mailing's ledger rows; returns how many were sent."""
    _announce_leftovers(send_ids)
    claimed = _claim(send_ids)
    if not claimed:
        return 0
    by_mailing: dict[int, list[Any]] = {}
    for row in claimed:
        by_mailing.setdefault(row.mailing_id, []).append(row)
    sent = 0
    for mailing_id, rows in by_mailing.items():
        target = db.session.get(Mailing, mailing_id)
        if target is not None:
            db.session.expunge(target)  # read once; see `_recipients`
        sent += _send_mailing_rows(target, rows)
    if len(claimed) < len(send_ids) and _still_sending(send_ids):
        raise ClaimedElsewhere("sends of this batch are claimed by another worker")
    return sent


class ClaimedElsewhere(RuntimeError):
    """Some of the batch's sends are claimed by another worker (or one that died: its claim
    goes stale after `STALE_CLAIM`): the outbox retries the batch with back-off until they are
    sent, by that worker or by this batch's retry."""


def _still_sending(send_ids: list[int]) -> bool:
    return db.session.execute(select(SENDS.c.id).where(
        SENDS.c.id.in_(send_ids), SENDS.c.status == "sending").limit(1)).first() is not None


def _claim(send_ids: list[int]) -> list[Any]:
    now = utcnow()
    with write() as session:
        return sorted(session.connection().execute(
            update(SENDS).where(SENDS.c.id.in_(send_ids), or_(
                SENDS.c.status == "queued",
                (SENDS.c.status == "sending") & (SENDS.c.claimed_at < now - STALE_CLAIM)))
            .values(status="sending", claimed_at=now, attempts=SENDS.c.attempts + 1)
            .returning(SENDS.c.id, SENDS.c.mailing_id, SENDS.c.contact_id,
                       SENDS.c.message_id)).all(), key=lambda row: row.id)


def _send_mailing_rows(target: Mailing | None, rows: list[Any]) -> int:
    if target is None:  # deleted meanwhile
        _finish_many([row.id for row in rows], "skipped", "the mailing was deleted")
        return 0
    recipients = _recipients(target, rows)
    if not recipients:
        return 0
    template = db.session.get(EmailTemplate, target.template_id) if target.template_id else None
    if template is None:
        _give_back([send_id for send_id, _ in recipients])
        raise MailingError(f"mailing {target.key!r} has no template")
    compiled = rendering.compiled(template, subject=target.subject or None,
                                  marketing=target.marketing)
    base = {**rendering.site_values(), **(target.context or {})}
    sign = dkim.load_signer()
    limiter = ratelimit.Limiter.from_settings()
    sent: list[tuple[int, int, str, str]] = []  # (send, contact, message id, subject)
    settled = [0]  # recipients sent, failed, or accepted by the server and being marked
    try:
        with open_transport() as transport, db.engine.connect() as marks:
            _send_each(target, recipients, compiled, base, sign, limiter, transport, marks,
                       sent, settled)
    except BaseException:
        # What was not handed to the server goes back for the retry; the message in flight
        # when a database write failed after the server's "250" stays claimed, to be sent
        # again once the claim is stale (at most that one twice).
        _give_back([send_id for send_id, _ in recipients[settled[0]:]])
        raise
    finally:
        _announce(target, sent)
    return len(sent)


def _send_each(target: Mailing, recipients: list[tuple[int, Contact]], compiled: Any,
               base: dict[str, Any], sign: Any, limiter: ratelimit.Limiter, transport: Any,
               marks: Connection, sent: list[tuple[int, int, str, str]],
               settled: list[int]) -> None:
    """The per-recipient loop: render, track, sign, wait for the rate, send, mark. `settled[0]`
    counts the recipients done with (and the one the server just accepted, before its mark),
    for what an error gives back."""
    for index, (send_id, contact) in enumerate(recipients):
        settled[0] = index
        message_id = new_message_id()
        unsubscribe_url, preferences_url = tokens.recipient_urls(contact.id, send_id)
        values = {**base, **rendering.contact_values(contact),
                  "unsubscribe_url": unsubscribe_url, "preferences_url": preferences_url}
        try:
            rendered = compiled.render(values)
        except rendering.TemplateRenderError as exc:
            _finish_many([send_id], "failed", f"the template failed for this contact: {exc}")
            continue
        html = tracking.track(rendered.html, send_id=send_id, mailing=target)
        headers = (list_headers(contact.id, send_id, target, unsubscribe_url)
                   if target.marketing else {})
        data = compose(Envelope(to=contact.email, subject=rendered.subject,
                                from_name=target.from_name, message_id=message_id,
                                headers=headers), html, rendered.text)
        if sign is not None:
            data = sign(data) + data
        try:
            limiter.wait()
        except ratelimit.RateLimited as exc:
            raise outbox.RetryLater(str(exc), exc.retry_after) from exc
        try:
            transport.send_raw(tokens.bounce_address("s", send_id), [contact.email], data)
        except smtplib.SMTPRecipientsRefused as exc:
            if not _permanent(exc):
                raise
            _refused(target, send_id, contact, str(exc.recipients)[:2000])
            continue
        except smtplib.SMTPResponseException as exc:
            if not 500 <= exc.smtp_code < 600:
                raise
            _refused(target, send_id, contact, f"{exc.smtp_code} {exc.smtp_error!r}")
            continue
        settled[0] = index + 1  # accepted: from here on it is not given back
        _mark_sent(marks, send_id, contact.email, message_id)
        sent.append((send_id, contact.id, message_id, rendered.subject))
        if len(sent) >= ANNOUNCE_EVERY:
            _announce(target, sent)


def _recipients(target: Mailing, rows: list[Any]) -> list[tuple[int, Contact]]:
    """The claimed rows to send, with their contacts; the others are marked now: nothing is
    sent to a suppressed address, to someone who left the mailing's list, or to a contact that
    was merged or erased."""
    contacts = {c.id: c for c in db.session.scalars(select(Contact).options(
        selectinload(Contact.company)).where(
        Contact.id.in_([row.contact_id for row in rows])))}
    # Detached, so each recipient's short write (which expires what the session holds) does
    # not send the batch's contacts back to the database to be read again.
    for contact in contacts.values():
        db.session.expunge(contact)
    gone = [row.id for row in rows if contacts.get(row.contact_id) is None
            or contacts[row.contact_id].status in ("merged", "erased")]
    rows = [row for row in rows if row.id not in set(gone)]
    stopped = suppression.blocked([contacts[row.contact_id].email for row in rows],
                                  marketing=target.marketing)
    if target.list_slug:
        on_list = set(db.session.scalars(select(Subscription.contact_id).where(
            Subscription.list_slug == target.list_slug, Subscription.status == "subscribed",
            Subscription.contact_id.in_([row.contact_id for row in rows]))))
    else:
        on_list = {row.contact_id for row in rows}
    suppressed = [row.id for row in rows
                  if contacts[row.contact_id].email.lower() in stopped]
    left = [row.id for row in rows
            if row.contact_id not in on_list and row.id not in set(suppressed)]
    _finish_many(gone, "skipped", "the contact was merged or erased")
    _finish_many(suppressed, "suppressed", "on the suppression list")
    _finish_many(left, "suppressed", f"not subscribed to {target.list_slug}")
    skip = set(gone) | set(suppressed) | set(left)
    return [(row.id, contacts[row.contact_id]) for row in rows if row.id not in skip]


def _finish_many(send_ids: list[int], status: str, error: str) -> None:
    if not send_ids:
        return
    with write() as session:
        session.connection().execute(update(SENDS).where(
            SENDS.c.id.in_(send_ids), SENDS.c.status == "sending").values(
            status=status, error=error))


def _mark_sent(connection: Connection, send_id: int, email: str, message_id: str) -> None:
    """The mark right after the server's "250": from here no retry sends it again. One small
    statement per message, the least that keeps a crash to one duplicate: on a connection the
    batch holds for its marks rather than the session's (whose commit machinery costs more than
    the statement). `locking()` still takes the writer's turn and SQLite's write lock first."""
    with locking(), connection.begin():
        connection.execute(_MARK_SENT, {
            "send_id": send_id, "sent_at": utcnow(), "email": email, "message_id": message_id})


_MARK_SENT = update(SENDS).where(SENDS.c.id == bindparam("send_id")).values(
    status="sent", sent_at=bindparam("sent_at"), email=bindparam("email"),
    message_id=bindparam("message_id"), error="")


def _announce(target: Mailing | None, sent: list[tuple[int, int, str, str]]) -> None:
    """The `email_sent` events of sends marked sent, written together and flagged, so each is
    recorded once: by this batch, or by its retry if the worker died in between (see
    `_announce_leftovers`)."""
    if not sent or target is None:
        return
    with write() as session:
        flagged = set(session.connection().execute(
            update(SENDS).where(SENDS.c.id.in_([row[0] for row in sent]),
                                SENDS.c.status == "sent", SENDS.c.announced.is_(False))
            .values(announced=True).returning(SENDS.c.id)).scalars())
        events.record_many([{
            "type": "email_sent", "contact_id": contact_id, "properties": {
                "subject": subject[:200], "message_id": message_id, "mailing": target.key,
                "mailing_id": target.id}}
            for send_id, contact_id, message_id, subject in sent if send_id in flagged])
    sent.clear()


def _announce_leftovers(send_ids: list[int]) -> None:
    """Sends of this batch marked sent whose events a dead worker did not get to write."""
    rows = db.session.execute(select(
        SENDS.c.id, SENDS.c.mailing_id, SENDS.c.contact_id, SENDS.c.message_id).where(
        SENDS.c.id.in_(send_ids), SENDS.c.status == "sent",
        SENDS.c.announced.is_(False))).all()
    for mailing_id in {row.mailing_id for row in rows}:
        target = db.session.get(Mailing, mailing_id)
        template = db.session.get(EmailTemplate, target.template_id) if target and \
            target.template_id else None
        subject = target.subject or (template.subject if template else "") if target else ""
        _announce(target, [(row.id, row.contact_id, row.message_id, subject)
                           for row in rows if row.mailing_id == mailing_id])


def _refused(target: Mailing, send_id: int, contact: Contact, error: str) -> None:
    """5xx for one recipient: that row failed, the address is a hard bounce, the batch goes on."""
    with write() as session:
        session.connection().execute(update(SENDS).where(SENDS.c.id == send_id).values(
            status="failed", email=contact.email, error=error[:2000]))
        bounces.record_bounce(email=contact.email, kind="hard", source="smtp-5xx",
                              diagnostic=error[:2000], send_id=send_id)
    log.warning("mailing %s: %s refused: %s", target.key, contact.email, error)


def _permanent(exc: smtplib.SMTPRecipientsRefused) -> bool:
    return all(500 <= code < 600 for code, _ in exc.recipients.values())


def _give_back(send_ids: list[int]) -> None:
    """Rows the server has not accepted go back to `queued` for the outbox's retry."""
    if not send_ids:
        return
    with write() as session:
        session.connection().execute(update(SENDS).where(
            SENDS.c.id.in_(send_ids), SENDS.c.status == "sending").values(status="queued"))
