"""The site's generation: one integer that moves whenever what visitors see may have changed.

Publishing, switching the theme, saving a setting that changes pages: each bumps it in the same
transaction as the change (`bump()`). Every process reads it at most every `TTL` seconds
(`current()`), one primary-key query on a pooled DB-API connection (bypassing the ORM and its
transaction events on purpose: their bookkeeping costs several times the query), so a change
made by any process on any machine reaches every other within a quarter of a second, and the one
that made it at once, without Redis or a message bus. The page cache keys entries with it, the
theme registry and the plugin manager re-read their state when it moves.

It lives below content, themes and plugins alike, so each can bump or follow it without
importing another.
"""
from __future__ import annotations

import time
from datetime import datetime

from flask import current_app
from sqlalchemy import Integer, update
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import UTCDateTime, db, utcnow, write

TTL = 0.25  # seconds a process trusts the generation it last read
_MEMO = "magnet.site_generation"
_SQL = "SELECT generation FROM content_cache_state WHERE id = 1"


class SiteGeneration(db.Model):
    """The one row every process reads; bumped on every change of what visitors see."""

    __branch__ = "content"  # its table was made, and is migrated, by the content's branch
    __tablename__ = "content_cache_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def current() -> int:
    """The generation, read at most every `TTL` seconds by this process."""
    remembered = current_app.extensions.get(_MEMO)
    now = time.monotonic()
    if remembered and now - remembered[1] < TTL:
        return remembered[0]
    value = _read()
    current_app.extensions[_MEMO] = (value, now)
    return value


def _read() -> int:
    connection = db.engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(_SQL)
        row = cursor.fetchone()
        cursor.close()
    finally:
        connection.close()  # back to the pool, which ends the read transaction
    return int(row[0]) if row else 0


def bump() -> None:
    """Move the generation on. Inside the `write()` that makes the change, it commits with it;
    on its own, it commits at once. This process sees the new value at once."""
    with write() as session:
        changed = session.execute(update(SiteGeneration).where(SiteGeneration.id == 1).values(
            generation=SiteGeneration.generation + 1, changed_at=utcnow())).rowcount
        if not changed:
            session.add(SiteGeneration(id=1, generation=1, changed_at=utcnow()))
    current_app.extensions[_MEMO] = None
