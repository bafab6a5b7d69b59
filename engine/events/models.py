"""The event stream's tables: the events (the activity timeline), the delivery queue, its
partitions, and the event types owners define.

The events are rows of `activities`, each contact's timeline; a row of `event_queue`
says that one of them still has to be delivered to `on_event`. Rows are written in the
transaction that stores the event and deleted in the one that delivers it, so the queue holds
only what is on its way (it stays small however large the timeline grows).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import UTCDateTime, db, utcnow

# Events of one contact (or one anonymous browser) share a partition, so they are delivered in
# order by whichever worker holds it, while other partitions go to other workers.
PARTITIONS = 64
BIGINT = BigInteger().with_variant(Integer, "sqlite")  # SQLite's rowid is 64-bit already


class Activity(db.Model):
    """One event on the timeline: anonymous (visitor only) until the visitor identifies. (The
    table is migrated by the contacts branch, which made it.)"""

    __branch__ = "contacts"  # its table was made, and is migrated, by the contacts' branch
    __tablename__ = "activities"
    __table_args__ = (Index("ix_activities_contact_occurred", "contact_id", "occurred_at"),)

    # 64-bit on PostgreSQL: tracking fills this table fastest (SQLite's rowid is 64-bit already).
    id: Mapped[int] = mapped_column(BIGINT, primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    visitor_id: Mapped[str | None] = mapped_column(String(32), index=True)
    type: Mapped[str] = mapped_column(String(50), index=True)
    url: Mapped[str] = mapped_column(Text, default="")
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class QueuedEvent(db.Model):
    __tablename__ = "event_queue"
    __table_args__ = (Index("ix_event_queue_partition_seq", "partition", "seq"),)

    seq: Mapped[int] = mapped_column(BIGINT, primary_key=True)
    partition: Mapped[int] = mapped_column(SmallInteger)
    event_id: Mapped[int] = mapped_column(BIGINT)


class EventPartition(db.Model):
    """One row per partition: a delivering worker locks it (PostgreSQL `FOR UPDATE SKIP
    LOCKED`; SQLite's single writer does the same by itself)."""

    __tablename__ = "event_partitions"

    partition: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    delivered: Mapped[int] = mapped_column(BIGINT, default=0)


class CustomEventType(db.Model):
    """An event type an owner declared in the admin, for events sent from outside (a shop's
    `cart_abandoned`, a CRM's `deal_won`)."""

    __tablename__ = "event_types"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(1000), default="")
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # name -> type
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
