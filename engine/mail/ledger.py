"""The send ledger's writes: claims, marks, give-backs and the `email_sent` announcements.

Every write after a claim names the claim (`claimed_at`), so a worker whose claim went stale
and was taken over can no longer mark, fail or give back rows that now belong to another; and
each send's Message-ID is derived from its ledger row, so a copy sent again after a crash is
the same message to the receiving side, which can recognise it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, case, or_, select, update

from engine import events
from engine.db import db, driver_binds, driver_write, locking, utcnow, write
from engine.jobs import outbox
from engine.mail.models import EmailTemplate, Mailing, MailSend

SENDS = MailSend.__table__
MAILINGS = Mailing.__table__
# A claim older than this belongs to a worker that died (the outbox's lease is longer); a batch
# stops taking new recipients after half of it, so a live worker's claim never goes stale.
STALE_CLAIM = timedelta(seconds=120)
ANNOUNCE_EVERY = 50  # sends whose `email_sent` events are written together
# A recipient whose server keeps saying "try later" (4xx) is tried again after 5 minutes, then
# after twice as long each time (at most `LONGEST_WAIT`), and given up after `GIVE_UP_AFTER`
# attempts, about ten hours: a mailing must finish, and a mailbox full for that long is full.
GIVE_UP_AFTER = 8
LONGEST_WAIT = timedelta(hours=6)


@dataclass
class Claim:
    """The rows one run of a batch holds, and when it took them."""

    at: datetime
    rows: list[Any]
    open: set[int] = field(default_factory=set)  # claimed, not yet settled

    def settle(self, send_id: int) -> None:
        self.open.discard(send_id)

    def mine(self) -> Any:
        return SENDS.c.claimed_at == self.at


def claim(send_ids: list[int]) -> Claim:
    """Take the batch's rows nobody holds: queued ones, and those whose claim is stale."""
    now = utcnow()
    with write() as session:
        rows = sorted(session.connection().execute(
            update(SENDS).where(SENDS.c.id.in_(send_ids), or_(
                SENDS.c.status == "queued",
                (SENDS.c.status == "sending") & (SENDS.c.claimed_at < now - STALE_CLAIM)))
            .values(status="sending", claimed_at=now, attempts=SENDS.c.attempts + 1)
            .returning(SENDS.c.id, SENDS.c.mailing_id, SENDS.c.contact_id)).all(),
            key=lambda row: row.id)
    return Claim(now, rows, {row.id for row in rows})


def still_sending(send_ids: list[int]) -> bool:
    return db.session.execute(select(SENDS.c.id).where(
        SENDS.c.id.in_(send_ids), SENDS.c.status == "sending").limit(1)).first() is not None


_MARK_SENT = update(SENDS).where(
    SENDS.c.id == bindparam("send_id"), SENDS.c.claimed_at == bindparam("claimed")).values(
    status="sent", sent_at=bindparam("sent_at"), email=bindparam("email"),
    message_id=bindparam("message_id"), error="")


def mark_sent(connection: Connection, held: Claim, send_id: int, email: str,
              message_id: str) -> None:
    """The mark right after the server's "250": from here no retry sends it again. One small
    statement per message, the least that keeps a crash to one duplicate: on a connection the
    batch holds for its marks rather than the session's (whose commit machinery costs more than
    the statement). The writer's turn and SQLite's write lock come first; on SQLite the
    statement goes straight to the driver (`engine.db.driver_write`), which halves the mark."""
    now = utcnow()
    if connection.dialect.name != "sqlite":
        with locking(), connection.begin():
            connection.execute(_MARK_SENT, {"send_id": send_id, "claimed": held.at,
                                            "sent_at": now, "email": email,
                                            "message_id": message_id})
        return
    time = driver_binds((SENDS.c.claimed_at,), connection.dialect)[0]
    with driver_write(connection) as raw:
        raw.execute(_MARK_SENT_SQLITE, (time(now), email, message_id, send_id, time(held.at)))


# `_MARK_SENT` as SQLite's driver takes it; times bound as the column type binds them.
_MARK_SENT_SQLITE = (f"UPDATE {SENDS.name} SET status = 'sent', sent_at = ?, email = ?, "
                     "message_id = ?, error = '' WHERE id = ? AND claimed_at = ?")


def finish(held: Claim, send_ids: list[int], status: str, error: str,
           email: str | None = None) -> None:
    """Settle rows without sending them (failed, suppressed, skipped), with the reason."""
    if not send_ids:
        return
    values: dict[str, Any] = {"status": status, "error": error[:2000]}
    if email is not None:
        values["email"] = email
    with write() as session:
        session.connection().execute(update(SENDS).where(
            SENDS.c.id.in_(send_ids), SENDS.c.status == "sending", held.mine()).values(**values))
    for send_id in send_ids:
        held.settle(send_id)


def _returned() -> Any:
    """What a row given back becomes: `queued` again, or `held` when its mailing was paused
    meanwhile, or `skipped` when it was cancelled (`sending.hold`, `sending.cancel`), so a
    batch that was running when the editor paused or cancelled sends nothing more."""
    state = select(MAILINGS.c.state).where(MAILINGS.c.id == SENDS.c.mailing_id) \
        .scalar_subquery()
    return case((state == "held", "held"), (state == "cancelled", "skipped"), else_="queued")


def stopped(mailing_id: int) -> bool:
    """Whether the mailing was paused or cancelled (a running batch asks now and then, on a
    connection of its own: the session's transaction may hold an older snapshot)."""
    with db.engine.connect() as connection:
        return bool(connection.execute(select(MAILINGS.c.state).where(
            MAILINGS.c.id == mailing_id)).scalar())


def give_back(held: Claim, send_ids: list[int] | None = None,
              unattempted: bool = False) -> None:
    """Rows not handed to the server go back to `queued` for the outbox's retry (all the
    claim's unsettled rows when `send_ids` is None); see `_returned`. `unattempted`: the batch
    stopped before them on purpose (it gave way, was paused, or ran out of time), so the
    claim's count of an attempt is taken back: their next 4xx gets its full retries."""
    ids = sorted(held.open if send_ids is None else set(send_ids) & held.open)
    if not ids:
        return
    attempts = SENDS.c.attempts - 1 if unattempted else SENDS.c.attempts
    with write() as session:
        session.connection().execute(update(SENDS).where(
            SENDS.c.id.in_(ids), SENDS.c.status == "sending", held.mine()).values(
            status=_returned(), attempts=attempts))
    for send_id in ids:
        held.settle(send_id)


def retry_alone(held: Claim, send_id: int, error: str, delay: timedelta) -> bool:
    """A recipient the server asked to try later (4xx): queued again with a batch of its own,
    after `delay` (doubled for each earlier attempt), so it does not hold up the others.
    False, leaving the row to the caller, when it was tried `GIVE_UP_AFTER` times."""
    attempts = db.session.scalar(select(SENDS.c.attempts).where(SENDS.c.id == send_id)) or 1
    if attempts >= GIVE_UP_AFTER:
        return False
    with write() as session:
        status = session.connection().execute(update(SENDS).where(
            SENDS.c.id == send_id, SENDS.c.status == "sending", held.mine()).values(
            status=_returned(), error=error[:2000]).returning(SENDS.c.status)).scalar()
        if status == "queued":
            outbox.add("mail.send_mailing", send_ids=[send_id],
                       delay=min(delay * 2 ** (attempts - 1), LONGEST_WAIT))
    held.settle(send_id)
    return True


def announce(target: Mailing | None, sent: list[tuple[int, int, str, str]]) -> None:
    """The `email_sent` events of sends marked sent, written together and flagged, so each is
    recorded once: by this batch, or by its retry if the worker died in between (see
    `announce_leftovers`)."""
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


def announce_leftovers(send_ids: list[int]) -> None:
    """Sends of this batch marked sent whose events a dead worker did not get to write."""
    rows = db.session.execute(select(
        SENDS.c.id, SENDS.c.mailing_id, SENDS.c.contact_id, SENDS.c.message_id).where(
        SENDS.c.id.in_(send_ids), SENDS.c.status == "sent",
        SENDS.c.announced.is_(False))).all()
    for mailing_id in {row.mailing_id for row in rows}:
        target = db.session.get(Mailing, mailing_id)
        template = (db.session.get(EmailTemplate, target.template_id)
                    if target is not None and target.template_id else None)
        subject = (target.subject if target is not None else "") or (
            template.subject if template is not None else "")
        announce(target, [(row.id, row.contact_id, row.message_id, subject)
                          for row in rows if row.mailing_id == mailing_id])
