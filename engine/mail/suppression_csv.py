"""Suppression lists in and out as CSV: importing the do-not-mail list of the tool a site
leaves, so nobody who unsubscribed or bounced there is mailed here; exporting ours.

The email column is found by its name in the usual exports: Mailchimp "Email Address",
HubSpot "Email", Mautic "email" (and the common variants). An optional reason column
("reason", "status", ...) maps each row: unsubscribed, bounced / cleaned (Mailchimp's word for
addresses it stopped mailing after bounces), complained; rows without one get the reason the
importer chose. A row that cannot be used (no valid address, an unknown reason such as
"subscribed") is reported with its line number and skipped; a file that is not a CSV or has
no email column changes nothing.

`read()` checks the whole file first (the dry run is just that); `apply()` then writes it in
chunks: the addresses already listed are looked up a thousand at a time, new ones are inserted
in one multi-row INSERT per chunk, and existing ones go through `suppression.suppress`, which
only ever strengthens an entry.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from sqlalchemy import insert, select

from engine.contacts.service import ContactError, normalise_email
from engine.contacts.transfer import BOM, column_key, spreadsheet_safe
from engine.db import db, utcnow, write
from engine.mail import suppression
from engine.mail.models import Suppression

MAX_BYTES = 20 * 1024 * 1024  # ~500,000 addresses; a larger list can be split
# The admin's upload: the file and the form around it (the body limit, `engine.web`).
UPLOAD_CONFIG = "MAIL_SUPPRESSION_UPLOAD_BYTES"
UPLOAD_BYTES = MAX_BYTES + 64 * 1024
CHUNK = 1000
BAD_ROWS_SHOWN = 100
EMAIL_COLUMNS = ("email_address", "email", "e_mail", "emailaddress", "mail", "email_addr")
# Not Mailchimp's UNSUB_REASON: free text ("no longer interested"), not a kind of entry.
REASON_COLUMNS = ("reason", "status", "suppression_reason", "suppression_type")
# What other tools write -> our reason.
REASON_WORDS = {
    "unsubscribed": "unsubscribed", "unsubscribe": "unsubscribed", "unsub": "unsubscribed",
    "opted_out": "unsubscribed", "opt_out": "unsubscribed", "optout": "unsubscribed",
    "do_not_contact": "unsubscribed", "dnc": "unsubscribed", "manual": "unsubscribed",
    "bounced": "hard_bounce", "bounce": "hard_bounce", "hard_bounce": "hard_bounce",
    "hardbounce": "hard_bounce", "hard": "hard_bounce", "cleaned": "hard_bounce",
    "invalid": "hard_bounce",
    "complained": "complaint", "complaint": "complaint", "spam": "complaint",
    "spam_report": "complaint", "spamreport": "complaint", "abuse": "complaint",
    "spam_complaint": "complaint",
}
# The reasons an importer may choose for rows that say none.
DEFAULT_REASONS = {"unsubscribed": "Unsubscribed", "hard_bounce": "Bounced (hard)",
                   "complaint": "Complained (spam report)",
                   "imported": "Do not mail (reason unknown)"}
EXPORT_COLUMNS = ["email", "reason", "scope", "since", "until", "note"]


class NotASuppressionList(ValueError):
    """The file is not a CSV, or no column holds email addresses: nothing was read."""


@dataclass
class Plan:
    """A file read and checked: `rows` (address -> reason, the strongest one when an address
    repeats), the bad lines and how many rows repeated an address."""

    email_column: str
    reason_column: str | None
    rows: dict[str, str] = field(default_factory=dict)
    bad: list[tuple[int, str]] = field(default_factory=list)
    repeated: int = 0
    new: int | None = None  # counted by `count_new()`

    @property
    def by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for reason in self.rows.values():
            counts[reason] = counts.get(reason, 0) + 1
        return dict(sorted(counts.items()))


def _text(data: bytes) -> str:
    if b"\x00" in data[:4096]:
        raise NotASuppressionList("This is not a CSV file (it looks like a binary file).")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")  # Excel's "CSV" on Windows


def _pick(headers: list[str], wanted: tuple[str, ...]) -> str | None:
    keys = {column_key(h): h for h in headers}
    return next((keys[k] for k in wanted if k in keys), None)


def read(data: bytes, default_reason: str = "unsubscribed") -> Plan:
    """Check a whole file; NotASuppressionList when it cannot be one."""
    if default_reason not in DEFAULT_REASONS:
        raise ValueError(f"unknown reason {default_reason!r}")
    if len(data) > MAX_BYTES:
        raise NotASuppressionList(f"The file is larger than {MAX_BYTES // 1024 // 1024} MB: "
                                  "split it and import the parts.")
    text = _text(data)
    sample = text[:8192]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, ",;\t|")
    except csv.Error:
        dialect = csv.excel
    lines = csv.reader(io.StringIO(text), dialect)
    try:
        headers = [h.strip().lstrip(BOM) for h in next(lines)]
    except (StopIteration, csv.Error):
        raise NotASuppressionList("The file is empty or not a CSV file.") from None
    email_column = _pick(headers, EMAIL_COLUMNS)
    if email_column is None:
        raise NotASuppressionList(
            "No email column: the first line must name it (“Email Address”, “Email” or "
            "“email”). Found: " + ", ".join(h for h in headers[:12] if h)[:300])
    reason_column = _pick(headers, REASON_COLUMNS)
    email_at = headers.index(email_column)
    reason_at = headers.index(reason_column) if reason_column else None
    plan = Plan(email_column, reason_column)
    strength = list(suppression.REASONS)  # later in the table = stronger
    try:
        for number, row in enumerate(lines, start=2):
            if not any(cell.strip() for cell in row):
                continue
            problem, address, reason = _row(row, email_at, reason_at, default_reason)
            if problem:
                plan.bad.append((number, problem))
                continue
            if address in plan.rows:
                plan.repeated += 1
                if strength.index(reason) <= strength.index(plan.rows[address]):
                    continue
            plan.rows[address] = reason
    except csv.Error as exc:
        raise NotASuppressionList(f"This is not a readable CSV file ({exc}).") from None
    return plan


def _row(row: list[str], email_at: int, reason_at: int | None,
         default_reason: str) -> tuple[str, str, str]:
    """(problem, address, reason) of one line; problem is "" for a good one."""
    raw = row[email_at].strip() if email_at < len(row) else ""
    if not raw:
        return "no email address", "", ""
    try:
        address = normalise_email(raw)
    except ContactError as exc:
        return f"{raw[:80]!r}: {exc.args[0]}", "", ""
    reason = default_reason
    said = row[reason_at].strip() if reason_at is not None and reason_at < len(row) else ""
    if said:
        reason = REASON_WORDS.get(column_key(said), "")
        if not reason:
            return f"{address}: unknown reason {said[:40]!r} (not imported)", "", ""
    return "", address, reason


def count_new(plan: Plan) -> Plan:
    """How many of the plan's addresses are not on the list yet (the dry run's figure)."""
    listed = 0
    for chunk in _chunks(list(plan.rows)):
        listed += len(_listed(chunk))
    plan.new = len(plan.rows) - listed
    return plan


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def _listed(addresses: list[str]) -> dict[str, str]:
    """{address: stored key} of these addresses already on the list (plain or hashed)."""
    keys = {a: a for a in addresses} | {suppression.hashed(a): a for a in addresses}
    return {keys[key]: key for key in db.session.scalars(
        select(Suppression.email).where(Suppression.email.in_(list(keys))))}


def apply(plan: Plan, *, by: str, note: str) -> tuple[int, int]:
    """Write the plan, a chunk per transaction; returns (added, already listed)."""
    added = existing = 0
    for chunk in _chunks(list(plan.rows)):
        with write() as session:
            listed = _listed(chunk)
            now = utcnow()
            fresh = [{"email": address, "reason": plan.rows[address],
                      "scope": suppression.REASONS[plan.rows[address]], "note": note[:500],
                      "created_by": by[:320], "created_at": now, "expires_at": None}
                     for address in chunk if address not in listed]
            if fresh:
                session.execute(insert(Suppression), fresh)
            for address in listed:
                suppression.suppress(address, plan.rows[address], by=by)
            added, existing = added + len(fresh), existing + len(listed)
    return added, existing


def export_lines() -> Iterator[str]:
    """The whole list as CSV text, a thousand rows at a time (for streaming)."""
    buffer = io.StringIO()
    buffer.write(BOM)
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    last = 0
    while True:
        rows = list(db.session.scalars(select(Suppression).where(Suppression.id > last)
                                       .order_by(Suppression.id).limit(CHUNK)))
        for row in rows:
            writer.writerow([spreadsheet_safe(str(value)) for value in (
                row.email, row.reason, row.scope, row.created_at.isoformat(),
                row.expires_at.isoformat() if row.expires_at else "", row.note)])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < CHUNK:
            return
        last = rows[-1].id


def read_file(stream: IO[bytes], default_reason: str = "unsubscribed") -> Plan:
    """`read()` on an open file, reading at most one byte past the size limit."""
    return read(stream.read(MAX_BYTES + 1), default_reason)
