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
Any error gives the rows not yet handed to the server back (the outbox retries with back-off),
and a batch stops taking recipients after half of `STALE_CLAIM`, so no live worker's claim is
ever taken over. A 4xx for one recipient retries that one alone, later; a 5xx fails that row,
and is a hard bounce only when it says the address does not exist (`engine.mail.refusals`);
five refusals in a row, or a refusal of us (MAIL FROM, DATA), stop the batch. The ledger's
writes are in `engine.mail.ledger`.
"""
from __future__ import annotations

import logging
import smtplib
import time
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from engine import bulk
from engine.contacts.models import Company, Contact, Subscription
from engine.contacts.store import dialect_insert
from engine.db import db, utcnow, write
from engine.jobs import job, outbox
from engine.mail import (
    bounces,
    dkim,
    ledger,
    ratelimit,
    refusals,
    rendering,
    suppression,
    tokens,
    tracking,
)
from engine.mail.compose import Envelope, compose, named_sender
from engine.mail.models import EmailTemplate, Mailing, MailSend
from engine.mail.service import sender
from engine.mail.transport import open_transport
from engine.mail.unsubscribe import list_headers
from engine.web.links import site_url

log = logging.getLogger("magnet.mail")

SENDS = MailSend.__table__
BATCH = 250  # recipients per job: one template compilation and one SMTP connection serve them
RETRY_LATER = timedelta(minutes=5)  # a recipient's 4xx ("mailbox busy") is tried again after
# A batch asks this often whether a job waits on a queue ahead of "mail" and, if so, gives its
# rest back for a new run: sending 250 messages must not hold up a due step or a trigger.
GIVE_WAY_EVERY = 20
# ...once a job has been seen waiting that long: another worker usually takes it at once (the
# tracking drain comes every second), and each giving way costs a new run and SMTP connection.
GIVE_WAY_AFTER = 1.0  # seconds


class MailingError(ValueError):
    """A mailing that cannot be sent as asked (no template, a template that does not compile)."""


def mailing(key: str, *, template_id: int, **fields: Any) -> Mailing:
    """The mailing with this key, created on first use (inside `write()`); `fields` are
    `Mailing`'s columns (subject, preheader, list_slug, marketing, track_opens, track_clicks, utm,
    context, from_name) and update an existing one."""
    if db.session.get(EmailTemplate, template_id) is None:
        raise MailingError(f"no email template {template_id}")
    if not key or len(key) > 200:
        raise MailingError("a mailing's key is 1 to 200 characters")
    found = db.session.scalar(select(Mailing).where(Mailing.key == key))
    if found is None:
        # Two workers may create one mailing at once (PostgreSQL: the first emails of a
        # workflow step, queued by two deliveries): the second waits for the first's row and
        # takes it, where an ORM add would fail its whole transaction on the unique key.
        insert = dialect_insert(db.session.get_bind().dialect.name)
        db.session.execute(insert(Mailing.__table__).values(
            key=key, template_id=template_id, created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["key"]))
        found = db.session.scalar(select(Mailing).where(Mailing.key == key))
    found.template_id = template_id
    for name, value in fields.items():
        if not hasattr(Mailing, name) or name in ("id", "key", "created_at"):
            raise TypeError(f"Mailing has no field {name!r}")
        setattr(found, name, value)
    db.session.flush()
    return found


def enqueue(target: Mailing, contact_ids: Iterable[int], *, occurrence: str = "") -> int:
    """Queue `target` to these contacts (inside `write()`); returns how many were new. Contacts
    it was already queued to (for this occurrence) are left alone, sent or not. Refused at
    once (`SiteUrlMissing`) without `SITE_URL`: every copy carries links to the site."""
    return enqueue_each(target, ((c, occurrence) for c in contact_ids))


def enqueue_each(target: Mailing, recipients: Iterable[tuple[int, str]]) -> int:
    """Queue `target` to (contact, occurrence) pairs (inside `write()`): a drip email sent
    once per enrolment, where each recipient has an occurrence of their own. Pairs already
    queued are left alone, as in `enqueue`; returns how many were new."""
    site_url()
    pairs = sorted({(int(c), o[:60]) for c, o in recipients})
    if not pairs:
        return 0
    now = utcnow()
    rows = [{"mailing_id": target.id, "contact_id": cid, "occurrence": occurrence,
             "email": "", "status": "queued", "message_id": "", "attempts": 0,
             "error": "", "created_at": now} for cid, occurrence in pairs]
    queued = sorted(i for (i,) in bulk.insert_rows(
        db.session.connection(), SENDS, rows, returning=("id",),
        skip_conflicts=("mailing_id", "contact_id", "occurrence")))
    for start in range(0, len(queued), BATCH):
        outbox.add("mail.send_mailing", send_ids=queued[start:start + BATCH])
    return len(queued)


@job("mail.send_mailing", queue="mail")
def send_batch(send_ids: list[int]) -> int:
    """Send one batch of a mailing's ledger rows; returns how many were sent."""
    ledger.announce_leftovers(send_ids)
    held = ledger.claim(send_ids)
    sent = 0
    for mailing_id in sorted({row.mailing_id for row in held.rows}):
        rows = [row for row in held.rows if row.mailing_id == mailing_id]
        try:
            sent += _send_mailing_rows(mailing_id, rows, held)
        except MailingStopped:
            # they become `held` or `skipped` (`ledger._returned`)
            ledger.give_back(held, unattempted=True)
        except outbox.RetryLater:
            ledger.give_back(held, unattempted=True)  # given way or out of time, not tried
            raise
        except BaseException:
            # Whatever failed - a template, the key file, the database, the server - the rows
            # not handed to the server go back, so the outbox's retry sends them.
            ledger.give_back(held)
            raise
    if len(held.rows) < len(send_ids) and ledger.still_sending(send_ids):
        raise ClaimedElsewhere("sends of this batch are claimed by another worker")
    return sent


class MailingStopped(Exception):
    """The mailing was paused or cancelled while this batch ran: the rest is given back."""


class ClaimedElsewhere(RuntimeError):
    """Some of the batch's sends are claimed by another worker (or one that died: its claim
    goes stale after `STALE_CLAIM`): the outbox retries the batch with back-off until they are
    sent, by that worker or by this batch's retry."""


def _send_mailing_rows(mailing_id: int, rows: list[Any], held: ledger.Claim) -> int:
    target = db.session.get(Mailing, mailing_id)
    if target is None:  # deleted meanwhile
        ledger.finish(held, [row.id for row in rows], "skipped", "the mailing was deleted")
        return 0
    db.session.expunge(target)  # read once: the recipients' short writes must not reload it
    if target.state:  # paused or cancelled since these rows were queued
        raise MailingStopped(target.state)
    recipients = _recipients(target, rows, held)
    if not recipients:
        return 0
    template = db.session.get(EmailTemplate, target.template_id) if target.template_id else None
    if template is None:
        raise MailingError(f"mailing {target.key!r} has no template")
    compiled = rendering.compiled(template, subject=target.subject or None,
                                  marketing=target.marketing,
                                  preheader=target.preheader or None)
    base = {**rendering.site_values(), **(target.context or {})}
    # From the mailing's own name, else the site's (never the engine's "Magnet"), as the
    # site's other emails are.
    from_header = (named_sender(target.from_name) if target.from_name
                   else sender(base["site"]["name"]))
    sign = dkim.load_signer()
    limiter = ratelimit.Limiter.from_settings()
    sent: list[tuple[int, int, str, str]] = []  # (send, contact, message id, subject)
    try:
        with open_transport() as transport, db.engine.connect() as marks:
            _send_each(target, recipients, compiled, base, from_header, sign, limiter,
                       transport, marks, held, sent)
    finally:
        ledger.announce(target, sent)
    return len(sent)


def _send_each(target: Mailing, recipients: list[tuple[int, Recipient]], compiled: Any,
               base: dict[str, Any], from_header: str, sign: Any,
               limiter: ratelimit.Limiter, transport: Any,
               marks: Connection, held: ledger.Claim,
               sent: list[tuple[int, int, str, str]]) -> None:
    """The per-recipient loop: render, track, sign, wait for the rate, send, mark."""
    deadline = held.at + ledger.STALE_CLAIM / 2
    refused_in_a_row = 0
    waiting_since: float | None = None
    for number, (send_id, contact) in enumerate(recipients, 1):
        if utcnow() > deadline:  # hand the rest over before this claim could be taken over
            raise outbox.RetryLater("the batch's time is up; the rest goes on in a new run",
                                    timedelta(0))
        if number % ledger.ANNOUNCE_EVERY == 0 and ledger.stopped(target.id):
            raise MailingStopped(target.key)
        if number % GIVE_WAY_EVERY == 0:
            waiting_since = _still_waiting(waiting_since)
            if waiting_since is not None and time.monotonic() - waiting_since >= GIVE_WAY_AFTER:
                raise outbox.RetryLater("a job waits on a queue workers take first (due "
                                        "workflow steps, events); the rest goes on in a new "
                                        "run", timedelta(0))
        message_id = tokens.send_message_id(send_id)
        unsubscribe_url, preferences_url = tokens.recipient_urls(contact.id, send_id)
        values = {**base, **rendering.contact_values(contact),
                  "unsubscribe_url": unsubscribe_url, "preferences_url": preferences_url}
        try:
            rendered = compiled.render(values)
        except rendering.TemplateRenderError as exc:
            ledger.finish(held, [send_id], "failed",
                          f"the template failed for this contact: {exc}", contact.email)
            continue
        html = tracking.track(rendered.html, send_id=send_id, mailing=target)
        headers = (list_headers(contact.id, send_id, target, unsubscribe_url)
                   if target.marketing else {})
        data = compose(Envelope(to=contact.email, subject=rendered.subject,
                                sender=from_header, message_id=message_id,
                                headers=headers), html, rendered.text)
        if sign is not None:
            data = sign(data) + data
        try:
            limiter.wait()
        except ratelimit.RateLimited as exc:
            raise outbox.RetryLater(str(exc), exc.retry_after) from exc
        try:
            transport.send_raw(tokens.bounce_address("s", send_id), [contact.email], data)
        except (smtplib.SMTPException, refusals.NotDeliverable) as exc:
            outcome = refusals.of(exc)
            if outcome is refusals.Outcome.STOP:
                raise
            if outcome is refusals.Outcome.LATER:
                if ledger.retry_alone(held, send_id, _said(exc), RETRY_LATER):
                    continue
                _gave_up(target, held, send_id, contact, _said(exc))
                continue
            _refused(target, held, send_id, contact, _said(exc), outcome)
            refused_in_a_row += 1
            if refused_in_a_row >= refusals.STOP_AFTER:
                raise MailingError(f"the server refused {refused_in_a_row} recipients in a "
                                   f"row (the last: {_said(exc)}); the batch waits") from exc
            continue
        refused_in_a_row = 0
        held.settle(send_id)  # accepted: from here on it is never given back
        ledger.mark_sent(marks, held, send_id, contact.email, message_id)
        sent.append((send_id, contact.id, message_id, rendered.subject))
        if len(sent) >= ledger.ANNOUNCE_EVERY:
            ledger.announce(target, sent)


def _still_waiting(since: float | None) -> float | None:
    """When a job was first seen waiting on a queue ahead of "mail" (and is still), else None."""
    if not outbox.ahead_waiting("mail"):
        return None
    return time.monotonic() if since is None else since


@dataclass(frozen=True)
class Recipient:
    """What a send needs of a contact (what `rendering.contact_values` reads, the status and
    the company's name), read as plain columns: a batch of ORM contacts costs more to build
    than to render, and loads each one's tags besides."""

    id: int
    email: str
    status: str
    first_name: str | None
    last_name: str | None
    phone: str | None
    job_title: str | None
    country: str | None
    lifecycle_stage: str | None
    custom: dict[str, Any] | None
    company_name: str | None

    @property
    def name(self) -> str:  # as `Contact.name`
        return " ".join(part for part in (self.first_name, self.last_name) if part)

    @property
    def company(self) -> Any:
        return None if self.company_name is None else _Company(self.company_name)


@dataclass(frozen=True)
class _Company:
    name: str


def _contacts(ids: list[int]) -> dict[int, Recipient]:
    columns = [getattr(Contact, name.name) for name in fields(Recipient)
               if name.name != "company_name"]
    found = db.session.execute(select(*columns, Company.name.label("company_name"))
                               .outerjoin(Company, Company.id == Contact.company_id)
                               .where(Contact.id.in_(ids)))
    return {row.id: Recipient(*row) for row in found}


def _recipients(target: Mailing, rows: list[Any], held: ledger.Claim
                ) -> list[tuple[int, Recipient]]:
    """The claimed rows to send, with their contacts; the others are marked now: nothing is
    sent to a suppressed address, to someone who left the mailing's list, or to a contact that
    was merged or erased."""
    contacts = _contacts([row.contact_id for row in rows])
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
    ledger.finish(held, gone, "skipped", "the contact was merged or erased")
    ledger.finish(held, suppressed, "suppressed", "on the suppression list")
    ledger.finish(held, left, "suppressed", f"not subscribed to {target.list_slug}")
    skip = set(gone) | set(suppressed) | set(left)
    return [(row.id, contacts[row.contact_id]) for row in rows if row.id not in skip]


def _gave_up(target: Mailing, held: ledger.Claim, send_id: int, contact: Recipient,
             error: str) -> None:
    """A recipient still refused for now after `ledger.GIVE_UP_AFTER` attempts: failed, and a
    soft bounce (enough of them suppress the address, by the bounce rules)."""
    error = f"given up after {ledger.GIVE_UP_AFTER} attempts; the last: {error}"
    with write():
        ledger.finish(held, [send_id], "failed", error, contact.email)
        bounces.record_bounce(email=contact.email, kind="soft", source="smtp-4xx",
                              diagnostic=error, send_id=send_id)
    log.warning("mailing %s: %s %s", target.key, contact.email, error)


def _said(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{code} {message.decode(errors='replace')}"
                         for code, message in exc.recipients.values())[:2000]
    return str(exc)[:2000]


def _refused(target: Mailing, held: ledger.Claim, send_id: int, contact: Recipient, error: str,
             outcome: refusals.Outcome) -> None:
    """A 5xx for one recipient: that row failed and the batch goes on; when the server said
    the address does not exist, it is a hard bounce (suppressed for every mail)."""
    with write():
        ledger.finish(held, [send_id], "failed", error, contact.email)
        if outcome is refusals.Outcome.GONE:
            bounces.record_bounce(email=contact.email, kind="hard", source="smtp-5xx",
                                  diagnostic=error, send_id=send_id)
    log.warning("mailing %s: %s refused: %s", target.key, contact.email, error)


# -- holding a mailing back ----------------------------------------------------------------------

def hold(target: Mailing) -> int:
    """Pause `target` (inside `write()`): its queued rows become `held`, so the batches already
    queued claim nothing, and a batch in flight stops within `ledger.ANNOUNCE_EVERY` messages
    and gives its rest back as `held`. Returns how many rows were held now."""
    target.state = "held"
    db.session.flush()
    return db.session.connection().execute(update(SENDS).where(
        SENDS.c.mailing_id == target.id, SENDS.c.status == "queued").values(
        status="held")).rowcount


def release(target: Mailing) -> int:
    """Resume a held mailing (inside `write()`): its held rows are queued again, with new
    batches. Returns how many."""
    target.state = ""
    db.session.flush()
    ids = sorted(db.session.connection().execute(update(SENDS).where(
        SENDS.c.mailing_id == target.id, SENDS.c.status == "held").values(
        status="queued").returning(SENDS.c.id)).scalars())
    for start in range(0, len(ids), BATCH):
        outbox.add("mail.send_mailing", send_ids=ids[start:start + BATCH])
    return len(ids)


def cancel(target: Mailing, reason: str) -> int:
    """Stop `target` for good (inside `write()`): rows not yet sent are `skipped` with the
    reason; a batch in flight stops as for `hold`. Returns how many rows were skipped now."""
    target.state = "cancelled"
    db.session.flush()
    return db.session.connection().execute(update(SENDS).where(
        SENDS.c.mailing_id == target.id, SENDS.c.status.in_(("queued", "held"))).values(
        status="skipped", error=reason[:2000])).rowcount
