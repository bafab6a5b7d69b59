"""Reading what comes back to a return path: DSNs (RFC 3464), ARF complaints (RFC 5965),
mailto unsubscribes, and the non-standard bounces some servers still send.

Which addresses failed comes from flufl.bounce (Mailman's detectors: RFC 3464 first, then
heuristics for Exim, qmail, old Exchange, Yahoo...); how they failed comes from the DSN's own
fields (`Status`, `Diagnostic-Code`), read with the standard library's parser:
- `Action: failed` with a 5.x.x status is hard, with a 4.x.x status (the server gave up
  retrying) or a "mailbox full" x.2.2 status is soft, as the big ESPs count them;
- `Action: delayed` (and flufl's "temporary" warnings) are ignored: the message is still being
  retried, and its final failure, if any, comes as a report of its own.
Which of our messages it was comes from the VERP return path (`bounces+s12-<mac>@...`) the
report was sent to or that the quoted original carries; its signature is checked, so a forged
address names nothing. Auto-replies (out of office, vacation) are not bounces and are ignored.
"""
from __future__ import annotations

import email
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr

from flufl.bounce import all_failures

from engine.mail.tokens import read_bounce_address

MAX_REPORT = 2 * 1024 * 1024  # bytes of a message read; a report is a few kB
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_AUTOREPLY = re.compile(r"^(auto(matic)?[ -]?(reply|response)|out of (the )?office|"
                        r"vacation|abwesenheit|absence|r[ée]ponse automatique)", re.I)
COMPLAINT_TYPES = ("abuse", "fraud")
_ADDRESS_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To",
                    "Original-Recipient", "To", "Cc")


@dataclass(frozen=True)
class Report:
    """One thing a message reports about one recipient of ours."""

    kind: str  # hard, soft, complaint, unsubscribe
    email: str  # the recipient it is about, lower-case ("" when only the VERP address says)
    diagnostic: str = ""
    verp: tuple[str, int] | None = None  # ("s", send id) or ("m", message id) when known
    message_id: str = ""  # the Message-ID of our original message, when quoted
    external_id: str | None = None  # stable per report and recipient, to count it once


def parse_report(raw: bytes, recipients: Iterable[str] = ()) -> list[Report]:
    """What one received message reports (an empty list: nothing to act on). `recipients`:
    the envelope recipients, when known (SMTP), which name our VERP address best."""
    message = email.message_from_bytes(raw[:MAX_REPORT])
    original = _original(message)
    verp = _verp(message, original, recipients)
    report_type = (message.get_param("report-type") or "").lower() \
        if message.get_content_type() == "multipart/report" else ""
    if report_type == "feedback-report":
        return _arf(message, original, verp)
    if report_type != "delivery-status" and _autoreply(message):
        return []
    if not report_type and verp is not None and "unsubscribe" in str(
            message.get("Subject", "")).lower():
        return [Report("unsubscribe", "", verp=verp)]
    return _bounces(message, original, verp)


def _clean(address: str) -> str:
    return parseaddr(address)[1].strip().lower()


def _digest(message: Message, *parts: str) -> str | None:
    """An id for one recipient of one report: its Message-ID, hashed with the recipient."""
    own = str(message.get("Message-ID", "")).strip()
    if not own:
        return None
    return "msg:" + hashlib.sha256("|".join((own, *parts)).encode()).hexdigest()[:40]


def _original(message: Message) -> Message | None:
    """The copy of our message a report quotes: message/rfc822 or text/rfc822-headers."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822" and part.is_multipart():
            return part.get_payload(0)
        if kind == "text/rfc822-headers":
            payload = part.get_payload(decode=True) or b""
            return HeaderParser().parsestr(payload.decode("utf-8", "replace"))
    return None


def _verp(message: Message, original: Message | None, recipients: Iterable[str]
          ) -> tuple[str, int] | None:
    candidates = list(recipients)
    for header in _ADDRESS_HEADERS:
        candidates += [a for _, a in getaddresses(message.get_all(header, []))]
    if original is not None:
        candidates += [a for _, a in getaddresses(original.get_all("Return-Path", []))]
        for value in original.get_all("List-Unsubscribe", []):
            candidates += re.findall(r"<mailto:([^?>]+)", str(value))
    for address in candidates:
        if "+" in address and (found := read_bounce_address(address)) is not None:
            return found
    return None


def _autoreply(message: Message) -> bool:
    auto = str(message.get("Auto-Submitted", "")).lower()
    if auto.startswith("auto-replied"):
        return True
    if any(message.get(h) for h in ("X-Autoreply", "X-Autorespond", "X-Autoresponder")):
        return True
    if str(message.get("Precedence", "")).lower() == "auto_reply":
        return True
    return bool(_AUTOREPLY.match(str(message.get("Subject", "")).strip()))


def _fields(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    text = part.get_payload(decode=True) or b""
    blocks = re.split(r"\r?\n\s*\r?\n", text.decode("utf-8", "replace").strip())
    return [HeaderParser().parsestr(block) for block in blocks if block.strip()]


def _dsn_fields(message: Message) -> tuple[dict[str, tuple[str, str, str]], dict[str, str]]:
    """({recipient: (action, status, diagnostic)}, {final recipient: original recipient}) from
    every delivery-status part: one entry per recipient, named as we sent to it."""
    found: dict[str, tuple[str, str, str]] = {}
    aliases: dict[str, str] = {}
    for part in message.walk():
        if part.get_content_type() not in ("message/delivery-status",
                                           "message/global-delivery-status"):
            continue
        for block in _fields(part):
            recipient = block.get("Original-Recipient") or block.get("Final-Recipient")
            if not recipient:
                continue
            address = _clean(str(recipient).partition(";")[2] or str(recipient))
            final = _clean(str(block.get("Final-Recipient", "")).partition(";")[2])
            diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
            diagnostic = re.sub(r"^(smtp|x-[a-z-]+)\s*;\s*", "", diagnostic, flags=re.I)
            value = (str(block.get("Action", "")).strip().lower(),
                     str(block.get("Status", "")).strip(), diagnostic)
            found[address] = value
            if final and final != address:
                aliases[final] = address
    return found, aliases


def _kind(status: str, diagnostic: str) -> str:
    match = _STATUS.search(status) or _STATUS.search(diagnostic)
    if match is None:
        return "hard"
    klass, subject, detail = match.groups()
    if klass == "4" or (subject, detail) == ("2", "2"):  # 4.x.x given up on; mailbox full
        return "soft"
    return "hard"


def _bounces(message: Message, original: Message | None, verp: tuple[str, int] | None
             ) -> list[Report]:
    fields, aliases = _dsn_fields(message)
    temporary, permanent = all_failures(message)
    failed = {aliases.get(a, a) for a in (p.decode("ascii", "replace").lower() for p in permanent)}
    failed |= {a for a, (action, _, _) in fields.items() if action.startswith(("fail", "error"))}
    if not failed and verp is not None and temporary == frozenset() and fields == {} \
            and _looks_bounced(message):
        failed = {""}  # unreadable, but to a return path of ours: the send says who (soft,
        # since only a DSN says how final it is)
    original_id = str(original.get("Message-ID", "")).strip() if original is not None else ""
    reports = []
    for address in sorted(failed):
        action, status, diagnostic = fields.get(address, ("failed", "", ""))
        if action.startswith("delayed"):
            continue
        diagnostic = diagnostic or status
        kind = _kind(status, diagnostic) if address else "soft"
        reports.append(Report(kind, address, diagnostic[:1000], verp,
                              original_id, _digest(message, address)))
    return reports


def _looks_bounced(message: Message) -> bool:
    sender = _clean(str(message.get("From", "")))
    subject = str(message.get("Subject", "")).lower()
    return sender.startswith(("mailer-daemon@", "postmaster@")) and any(
        word in subject for word in ("undeliver", "failure", "returned", "not delivered"))


def _arf(message: Message, original: Message | None, verp: tuple[str, int] | None
         ) -> list[Report]:
    fields: Message | None = None
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            blocks = _fields(part)
            fields = blocks[0] if blocks else None
            break
    if fields is None:
        return []
    feedback = str(fields.get("Feedback-Type", "")).strip().lower()
    if feedback not in COMPLAINT_TYPES:
        return []
    address = _clean(str(fields.get("Original-Rcpt-To", "")))
    if not address and original is not None:
        address = _clean(str(original.get("To", "")))
    original_id = str(original.get("Message-ID", "")).strip() if original is not None else ""
    diagnostic = " ".join(f"{k}: {fields.get(k)}" for k in (
        "Feedback-Type", "User-Agent", "Reported-Domain") if fields.get(k))
    return [Report("complaint", address, diagnostic, verp, original_id,
                   _digest(message, address))]
