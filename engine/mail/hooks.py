"""The `mail.send` job: delivers a batch of logged messages over one connection."""
from __future__ import annotations

import logging
import smtplib
from email.utils import make_msgid
from typing import Any

from sqlalchemy import select

from engine.db import db, utcnow, write
from engine.jobs import job
from engine.mail.models import MailMessage
from engine.mail.transport import build, open_transport
from engine.plugins import hookimpl

log = logging.getLogger("magnet.mail")


@job("mail.send", queue="mail")
def send_messages(message_ids: list[int]) -> int:
    """Send the batch's unsent messages; a retry skips those already sent.

    A permanent refusal (5xx) marks that message failed and the batch goes on; a temporary
    one (4xx, connection lost) raises so the outbox retries the rest with back-off.
    """
    rows = list(db.session.scalars(select(MailMessage).where(
        MailMessage.id.in_(message_ids), MailMessage.status == "queued").order_by(MailMessage.id)))
    sent = 0
    with open_transport() as transport:
        for row in rows:
            if not row.message_id:
                domain = row.to.rsplit("@", 1)[-1].strip("> ") or "localhost"
                row.message_id = make_msgid(idstring=f"m{row.id}", domain=domain)
            try:
                transport.deliver(build(row))
            except smtplib.SMTPRecipientsRefused as exc:
                _finish(row, "failed", str(exc.recipients)[:2000])
                continue
            except smtplib.SMTPResponseException as exc:
                if 500 <= exc.smtp_code < 600:
                    _finish(row, "failed", f"{exc.smtp_code} {exc.smtp_error!r}"[:2000])
                    continue
                raise
            _finish(row, "sent", "")
            sent += 1
    return sent


def _finish(row: MailMessage, status: str, error: str) -> None:
    with write():
        row.status, row.error = status, error
        row.sent_at = utcnow() if status == "sent" else None
        db.session.add(row)
    if status == "failed":
        log.warning("mail %s to %s refused: %s", row.id, row.to, error)


@hookimpl
def register_jobs() -> list[Any]:
    return [send_messages]
