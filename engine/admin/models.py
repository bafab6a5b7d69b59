"""The admin's own tables: the editor's autosaved drafts."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import UTCDateTime, db, utcnow


class ContentAutosave(db.Model):
    """The editor's latest unsaved text of one item, per person, saved every few seconds.

    Kept apart from the item's revisions so that typing into a published page never changes
    the live page and does not add a revision every few seconds; an explicit save turns it into
    a revision and removes it. One row per person and item, overwritten in place.
    """

    __tablename__ = "content_autosave"
    __table_args__ = (UniqueConstraint("item_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("content_item.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
