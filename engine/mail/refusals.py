"""What an SMTP refusal means, for the message and for the address, in both senders.

Only a refusal that says the address does not exist is a hard bounce, which suppresses the
address for good: a 5xx to RCPT with an enhanced status of 5.1.x (bad mailbox or domain) or
5.2.1 (mailbox disabled), or, from a server that gives no enhanced status, 550, 551 or 553.
Refusals that are about us rather than the address - "554 5.7.1 relaying denied", a sender the
provider has not verified (MAIL FROM refused), content refused at DATA - must not suppress
anyone: a misconfigured sender would otherwise turn the whole list into bounces.
"""
from __future__ import annotations

import re
import smtplib
from enum import Enum

_STATUS = re.compile(rb"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
# Refusals of this recipient in a row after which a batch stops: the server is refusing us.
STOP_AFTER = 5


class Outcome(Enum):
    GONE = "gone"  # the address does not exist: fail the row, record a hard bounce
    REFUSED = "refused"  # this message to this address refused: fail the row, nothing more
    LATER = "later"  # 4xx for this recipient: try this one again later, go on with the rest
    STOP = "stop"  # the server refuses us or the connection failed: give the batch back


class NotDeliverable(ValueError):
    """The address cannot be written in this SMTP session (not ASCII, no SMTPUTF8 offered)."""


def of(exc: BaseException) -> Outcome:
    if isinstance(exc, NotDeliverable):
        return Outcome.REFUSED
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, message = next(iter(exc.recipients.values()), (0, b""))
        if 400 <= code < 500:
            return Outcome.LATER
        if 500 <= code < 600:
            return Outcome.GONE if address_gone(code, message) else Outcome.REFUSED
    return Outcome.STOP


def address_gone(code: int, message: bytes | str) -> bool:
    text = message.encode() if isinstance(message, str) else message
    status = _STATUS.search(text or b"")
    if status is not None:
        subject, detail = int(status[2]), int(status[3])
        return status[1] == b"5" and (subject == 1 or (subject, detail) == (2, 1))
    return code in (550, 551, 553)
