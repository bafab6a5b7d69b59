"""The table owned by themes: which theme the site shows."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import UTCDateTime, db, utcnow


class ThemeState(db.Model):
    __tablename__ = "theme_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    active: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
