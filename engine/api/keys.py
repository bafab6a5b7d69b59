"""API keys: made and shown once, stored as a hash, checked on every request, revoked at once.

Checking a key is on the path of every API request, so a process remembers the keys it checked
for `CHECK_TTL` seconds; a revocation reaches every process within that time (and the one that
revoked at once).
"""
from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from engine.api.models import ApiKey
from engine.db import db, utcnow, write

PREFIX = "mgk_"
CHECK_TTL = 2.0
_CACHE = "magnet.api.keys"


def digest(key: str) -> str:
    """What is stored of a key: its SHA-256."""
    return hashlib.sha256(key.encode()).hexdigest()


def create(name: str, user_id: int | None) -> tuple[ApiKey, str]:
    """A new key named `name`: the row, and the key itself (shown once, never stored). Two
    active keys never share a name, so the name says which one to revoke."""
    name = (name or "").strip()[:200]
    if not name:
        raise ValueError("Give the key a name that says where it is used (e.g. “Shop”).")
    key = PREFIX + secrets.token_urlsafe(32)
    with write() as session:
        taken = session.scalar(select(ApiKey.prefix).where(
            func.lower(ApiKey.name) == name.lower(), ApiKey.revoked_at.is_(None)).limit(1))
        if taken is not None:
            raise ValueError(f"An active key is named “{name}” already ({taken}…): give this "
                             "one another name, or revoke that one first.")
        row = ApiKey(name=name, prefix=key[:12], key_hash=digest(key), created_by=user_id,
                     created_at=utcnow())
        session.add(row)
        session.flush()
    return row, key


def revoke(key_id: int) -> ApiKey | None:
    with write() as session:
        row = session.get(ApiKey, key_id)
        if row is not None and row.revoked_at is None:
            row.revoked_at = utcnow()
    current_app.extensions.pop(_CACHE, None)
    return row


def active() -> list[ApiKey]:
    return list(db.session.scalars(select(ApiKey).order_by(ApiKey.revoked_at.is_not(None),
                                                           ApiKey.created_at.desc())))


def check(key: str) -> int | None:
    """The id of the live key `key` is, or None."""
    if not key.startswith(PREFIX) or len(key) > 100:
        return None
    stored = digest(key)
    cache: dict[str, tuple[int | None, float]] = current_app.extensions.setdefault(_CACHE, {})
    hit = cache.get(stored)
    now = time.monotonic()
    if hit is not None and now - hit[1] < CHECK_TTL:
        return hit[0]
    row: Any = db.session.execute(select(ApiKey.id, ApiKey.revoked_at)
                                  .where(ApiKey.key_hash == stored)).first()
    found = row.id if row is not None and row.revoked_at is None else None
    if len(cache) > 1000:
        cache.clear()
    cache[stored] = (found, now)
    return found


USE_MARK_SECONDS = 60.0


def due_for_use_mark(key_id: int) -> bool:
    """Whether this process should store the key's "last used" time now: at most once a
    minute per key and process, rather than a write per request."""
    marks: dict[int, float] = current_app.extensions.setdefault("magnet.api.key_used", {})
    now = time.monotonic()
    if now - marks.get(key_id, -USE_MARK_SECONDS) < USE_MARK_SECONDS:
        return False
    marks[key_id] = now
    return True
