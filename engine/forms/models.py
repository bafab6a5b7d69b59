"""Forms and their submissions.

A form's definition is stored as JSON (validated by `engine.forms.definitions`), whether it came
from `content/forms/*.yaml` (`source="file"`) or was made in the admin (`source="admin"`).
A submission keeps the raw values exactly as sent, so nothing a visitor gave is ever lost, even
when normalising or a follow-up fails.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import UTCDateTime, db, utcnow


class Form(db.Model):
    __tablename__ = "forms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(10), default="file")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Submission(db.Model):
    __tablename__ = "form_submissions"
    __table_args__ = (Index("ix_form_submissions_form_created", "form_slug", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    form_slug: Mapped[str] = mapped_column(String(100))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"),
                                                   index=True)
    visitor_id: Mapped[str | None] = mapped_column(String(32))
    raw: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # as sent, before cleaning
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # validated, normalised
    ip: Mapped[str] = mapped_column(String(45), default="")
    user_agent: Mapped[str] = mapped_column(String(400), default="")
    page_url: Mapped[str] = mapped_column(Text, default="")
    referrer: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
