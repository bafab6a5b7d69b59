"""Editor autosaves: the latest unsaved state of an item, per person (see ContentAutosave)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from engine.admin.models import ContentAutosave
from engine.db import db, utcnow, write

MAX_BYTES = 900_000  # below the request size limit, so a too-long text fails loudly, not silently


def save(item_id: int, user_id: int, data: dict[str, Any]) -> ContentAutosave:
    with write() as session:
        row = session.scalar(select(ContentAutosave).where(
            ContentAutosave.item_id == item_id, ContentAutosave.user_id == user_id))
        if row is None:
            row = ContentAutosave(item_id=item_id, user_id=user_id)
            session.add(row)
        row.data, row.saved_at = data, utcnow()
    return row


def latest(item_id: int, user_id: int) -> ContentAutosave | None:
    return db.session.scalar(select(ContentAutosave).where(
        ContentAutosave.item_id == item_id, ContentAutosave.user_id == user_id))


def discard(item_id: int, user_id: int) -> None:
    with write() as session:
        session.execute(delete(ContentAutosave).where(
            ContentAutosave.item_id == item_id, ContentAutosave.user_id == user_id))
