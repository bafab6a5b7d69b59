"""API keys (stored hashed, shown once) and the idempotency keys of requests already served."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
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


class IdempotentRequest(db.Model):
    """A request with an `Idempotency-Key` that was served: a retry gets the same answer, and
    the same key with a different event is refused (`request_hash`: the SHA-256 of the event
    as checked; none for requests served before it was kept)."""

    __tablename__ = "api_idempotency"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),
                      Index("ix_api_idempotency_created_at", "created_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    event_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    contact_id: Mapped[int] = mapped_column(Integer)
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
