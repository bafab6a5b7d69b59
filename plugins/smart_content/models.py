"""Smart blocks and their daily counts.

A block's variants are an ordered JSON list on the block itself (`[{name, content, rules}]`):
the order is the meaning (the first match wins), a block is always read and saved whole, and a
page render needs every block at once, so a child table would only add joins.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import UTCDateTime, db, utcnow


class SmartBlock(db.Model):
    __tablename__ = "smart_blocks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    default: Mapped[str] = mapped_column(Text, default="")  # Markdown, shown when nothing matches
    # [{"name": str, "content": Markdown, "rules": {"match": "all"|"any", "conditions": [...]}}]
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SmartStat(db.Model):
    """Views and conversions of one variant (-1: the default) of a block on one day (UTC).

    Written only by the flush job, from counts the web processes keep in Redis, so a page view
    never costs a database write."""

    __tablename__ = "smart_stats"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    block_id: Mapped[int] = mapped_column(Integer, primary_key=True, index=True)
    variant: Mapped[int] = mapped_column(Integer, primary_key=True)
    views: Mapped[int] = mapped_column(Integer, default=0)
    conversions: Mapped[int] = mapped_column(Integer, default=0)
