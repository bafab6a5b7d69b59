"""API keys (stored hashed, shown once) and the intake of events accepted from outside."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import UTCDateTime, db, utcnow


class ApiKey(db.Model):
    """A key an owner created. Only its SHA-256 is kept (a key is 256 random bits, so a plain
    hash is as strong as a slow one) and its first characters, to tell keys apart."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(12))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IntakeRow(db.Model):
    """An event accepted by `POST /api/v1/events`, checked and kept here until the drain
    (`engine.api.drain`) stores its contact and event. Waiting rows have no `processed_at`;
    processed ones keep the ids stored (`event_id`, `contact_id`) or the reason they were
    `refused`. A row with an idempotency key outlives its processing by
    `API_IDEMPOTENCY_SECONDS`, so a retry is answered as the first request was (the same key
    with a different event, told by `request_hash`, is refused), without the address and
    properties once stored; one without a key is deleted once stored. `request_hash`: the
    SHA-256 of the event as checked (none for keys served before it was kept)."""

    __tablename__ = "api_intake"
    __table_args__ = (UniqueConstraint("api_key_id", "idempotency_key"),
                      Index("ix_api_intake_processed_at", "processed_at", "id"),
                      # ids are the senders' references: never reused after a row is deleted
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    api_key_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL"))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str] = mapped_column(String(320))
    type: Mapped[str] = mapped_column(String(100))
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    event_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    contact_id: Mapped[int | None] = mapped_column(Integer)
    refused: Mapped[str | None] = mapped_column(Text)
