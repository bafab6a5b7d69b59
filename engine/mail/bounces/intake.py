"""One received message, whichever way it came (mailbox, SMTP receiver): parsed, then each
report recorded. Kept apart from the transports so they stay thin and it is tested once."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from email.utils import parseaddr

from engine.db import db, write
from engine.mail.bounces import find_send, record_bounce
from engine.mail.bounces.parse import parse_report
from engine.mail.models import MailMessage, MailSend
from engine.mail.unsubscribe import apply_unsubscribe

OUTCOMES = ("hard", "soft", "complaints", "unsubscribes", "ignored")


def process_message(raw: bytes, *, source: str, recipients: Iterable[str] = ()) -> Counter[str]:
    """Record what one message reports, in one transaction; returns counts by `OUTCOMES`
    (a report seen before counts as ignored)."""
    counts: Counter[str] = Counter()
    with write():
        reports = parse_report(raw, recipients)
        if any(r.verp for r in reports):  # a return path is one recipient's: one report
            reports = reports[:1]
        for report in reports:
            if report.verp is None:
                # Not about a message of ours that we can prove: anyone can mail the bounce
                # mailbox a made-up report naming any address, and suppressing on its word
                # would let a stranger cut anyone off.
                counts["ignored"] += 1
                continue
            send_id, message_id = find_send(report.email, report.message_id, report.verp)
            if report.kind == "unsubscribe":
                contact_id = _contact_of(send_id, message_id)
                done = contact_id is not None and apply_unsubscribe(
                    contact_id, send_id if send_id and _is_send(send_id) else None, how="mailto")
                counts["unsubscribes" if done else "ignored"] += 1
                continue
            # The signed return path names the recipient better than a report (forwarding
            # changes the final recipient; a complaint often hides it).
            email = _address_of(send_id, message_id)
            stored = record_bounce(email=email or report.email, kind=report.kind, source=source,
                                   diagnostic=report.diagnostic, send_id=send_id,
                                   message_id=message_id, external_id=report.external_id)
            counts[{"complaint": "complaints"}.get(report.kind, report.kind)
                   if stored else "ignored"] += 1
    if not counts:
        counts["ignored"] += 1
    return counts


def _is_send(send_id: int) -> bool:
    return db.session.get(MailSend, send_id) is not None


def _address_of(send_id: int | None, message_id: int | None) -> str:
    if send_id and (send := db.session.get(MailSend, send_id)) is not None:
        return send.email
    if message_id and (message := db.session.get(MailMessage, message_id)) is not None:
        return parseaddr(message.to)[1]
    return ""


def _contact_of(send_id: int | None, message_id: int | None) -> int | None:
    if send_id:
        send = db.session.get(MailSend, send_id)
        return send.contact_id if send else None
    if message_id:
        message = db.session.get(MailMessage, message_id)
        return message.contact_id if message else None
    return None
