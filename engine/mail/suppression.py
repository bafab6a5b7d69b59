"""The suppression list: addresses that must not get mail, checked at send time.

Two scopes, because the law and the inbox providers ask for different things:
- "marketing" (unsubscribed, paused, most entries added by hand or imported): no newsletter or
  workflow email, but the transactional mail a person asks for (a double opt-in link, an
  invitation) still reaches them;
- "all" (a hard bounce, a spam complaint): nothing at all, since sending again to a dead or
  complaining address is what gets a sender blocked.
An entry only ever gets stronger: an address that complained and then unsubscribes stays "all".
A pause (the preference page's "pause for 30 days") ends at `expires_at` by itself.

Erasing a person (GDPR) keeps their suppression, as the law allows, but only as a SHA-256 of the
address: it still stops mail to them without keeping who they were.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, or_, select

from engine.db import db, utcnow
from engine.mail.models import Suppression

REASONS = {  # reason -> scope
    "unsubscribed": "marketing",
    "paused": "marketing",
    "manual": "marketing",
    "imported": "marketing",
    "soft_bounce": "all",
    "hard_bounce": "all",
    "complaint": "all",
}
SCOPES = ("marketing", "all")


def normalise(email: str) -> str:
    return email.strip().lower()


def hashed(email: str) -> str:
    """How an erased person's address is kept on the list."""
    return "sha256:" + hashlib.sha256(normalise(email).encode()).hexdigest()


def blocked(emails: Iterable[str], *, marketing: bool) -> set[str]:
    """Which of these addresses must not get this mail (lower-cased): every active entry for
    marketing mail, only "all" entries for transactional mail."""
    wanted = {normalise(e) for e in emails if e}
    if not wanted:
        return set()
    keys = {**{e: e for e in wanted}, **{hashed(e): e for e in wanted}}
    query = select(Suppression.email).where(
        Suppression.email.in_(list(keys)),
        or_(Suppression.expires_at.is_(None), Suppression.expires_at > utcnow()))
    if not marketing:
        query = query.where(Suppression.scope == "all")
    return {keys[found] for found in db.session.scalars(query)}


def entry(email: str) -> Suppression | None:
    address = normalise(email)
    return db.session.scalar(select(Suppression).where(
        Suppression.email.in_([address, hashed(address)])))


def suppress(email: str, reason: str, *, scope: str | None = None, note: str = "",
             by: str = "", expires_at: datetime | None = None) -> Suppression:
    """Add or strengthen an entry (inside `write()`); an "all" entry is never weakened and a
    permanent one never becomes a pause."""
    if reason not in REASONS:
        raise ValueError(f"unknown suppression reason {reason!r}")
    scope = scope or REASONS[reason]
    if scope not in SCOPES:
        raise ValueError(f"unknown suppression scope {scope!r}")
    address = normalise(email)
    if "@" not in address or len(address) > 320:
        raise ValueError(f"not an email address: {email!r}")
    row = entry(address)
    if row is None:
        row = Suppression(email=address, reason=reason, scope=scope, note=note[:500],
                          created_by=by[:320], expires_at=expires_at, created_at=utcnow())
        db.session.add(row)
    else:
        active = row.expires_at is None or row.expires_at > utcnow()
        stronger = scope == "all" and row.scope != "all"
        if not active or stronger or (row.expires_at is not None and expires_at is None):
            row.reason, row.expires_at, row.created_at = reason, expires_at, utcnow()
        elif row.expires_at is not None and expires_at is not None:
            row.expires_at = max(row.expires_at, expires_at)
        if scope == "all":
            row.scope = "all"
        if note:
            row.note = note[:500]
    db.session.flush()
    return row


def lift(email: str, *, reasons: Iterable[str] | None = None) -> bool:
    """Remove an address's entry (inside `write()`); with `reasons`, only an entry for one of
    them (a new opt-in lifts an unsubscribe, never a hard bounce). True when one was removed."""
    address = normalise(email)
    query = delete(Suppression).where(Suppression.email.in_([address, hashed(address)]))
    if reasons is not None:
        query = query.where(Suppression.reason.in_(list(reasons)))
    return bool(db.session.execute(query).rowcount)


def erase(emails: Iterable[str]) -> None:
    """GDPR erasure (inside `write()`): the entries stay, keyed by the address's hash."""
    for address in {normalise(e) for e in emails if e}:
        row = db.session.scalar(select(Suppression).where(Suppression.email == address))
        if row is None:
            continue
        if entry_hashed := db.session.scalar(select(Suppression).where(
                Suppression.email == hashed(address))):
            db.session.delete(entry_hashed)
            db.session.flush()
        row.email, row.note, row.created_by = hashed(address), "", ""
