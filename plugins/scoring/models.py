"""The scoring plugin's tables: rules, each contact's scores, the points each rule gave, fit
rules' matches, hand-offs, and a daily trace of fit for the history chart.

Engagement decays without a nightly rescan: each award keeps `weight = points·2^((t − epoch)/h)`
(`decay.weight`), a contact's `acc` is the sum of their weights, and their engagement at any
moment t is `acc·2^(−(t − epoch)/h)` (`decay.value`). So "engagement ≥ 50" is the indexable
`acc ≥ 50·2^((t − epoch)/h)`. The epoch and half-life are in `ScoringState`; moving the epoch
forward (`rebase`) multiplies every acc and weight by one factor.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import UTCDateTime, db, utcnow

RULE_KINDS = ("fit", "engagement", "inactivity")
CAP_PERIODS = ("day", "week", "month", "ever")


class ScoringRule(db.Model):
    """One rule. `kind` decides which columns matter:
    - fit: `definition`, a segment definition (`engine.segments.compiler`) over the contact;
    - engagement: `event` (a declared event type) and `filters` ([{"prop", "op", "value"}]),
      at most `cap_count` awards per `cap_period` (calendar day/week/month in UTC, or ever);
    - inactivity: no activity (`rules.ACTIVE_TYPES`) for `days` days; once per quiet spell.
    `version` grows with each edit; `status`/`progress` follow the recalculation it started."""

    __tablename__ = "scoring_rules"
    # A deleted rule's id is never given to a new rule (SQLite would reuse the highest id):
    # workers know rules by (id, version), and awards name their rule by id.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(200))
    points: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    event: Mapped[str] = mapped_column(String(100), default="", index=True)
    filters: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    cap_count: Mapped[int | None] = mapped_column(Integer)
    cap_period: Mapped[str] = mapped_column(String(8), default="")
    days: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(14), default="ready")  # or "recalculating"
    progress: Mapped[float] = mapped_column(Float, default=1.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ContactScore(db.Model):
    """A contact's scores: `fit` (sum of the matching fit rules' points, no decay) and `acc`
    (the engagement accumulator, see the module's docstring); `poor_fit` when fit is below the
    floor; `qualified_at` when they became marketing-qualified; `last_active_at` for
    inactivity rules."""

    __tablename__ = "scoring_scores"
    __table_args__ = (Index("ix_scoring_scores_fit_acc", "fit", "acc", "contact_id"),
                      Index("ix_scoring_scores_acc", "acc"),
                      Index("ix_scoring_scores_last_active", "last_active_at"),
                      Index("ix_scoring_scores_qualified_at", "qualified_at"))

    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"),
                                            primary_key=True, autoincrement=False)
    fit: Mapped[int] = mapped_column(Integer, default=0)
    acc: Mapped[float] = mapped_column(Float, default=0.0)
    poor_fit: Mapped[bool] = mapped_column(Boolean, default=False)
    qualified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_active_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScoreAward(db.Model):
    """Points one rule gave one contact at one moment (an engagement or inactivity rule).
    `event_id` is the event that earned them (unique per rule: an event scores once, however
    often it is delivered); `bucket` is the cap period it counts against."""

    __tablename__ = "scoring_awards"
    __table_args__ = (UniqueConstraint("rule_id", "event_id"),
                      Index("ix_scoring_awards_contact_rule_bucket", "contact_id", "rule_id",
                            "bucket"),
                      Index("ix_scoring_awards_rule_contact", "rule_id", "contact_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    rule_id: Mapped[int] = mapped_column(ForeignKey("scoring_rules.id", ondelete="CASCADE"))
    points: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    event_id: Mapped[int | None] = mapped_column(Integer)
    bucket: Mapped[str] = mapped_column(String(10), default="")
    weight: Mapped[float] = mapped_column(Float)


class FitMatch(db.Model):
    """A contact matching a fit rule now (kept like segment membership)."""

    __tablename__ = "scoring_fit_matches"

    rule_id: Mapped[int] = mapped_column(ForeignKey("scoring_rules.id", ondelete="CASCADE"),
                                         primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"),
                                            primary_key=True, index=True)
    since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Handoff(db.Model):
    """A hand-off to sales, one per `stage_changed` event into the hand-off stage (the unique
    event id is what makes a retried delivery send nothing twice)."""

    __tablename__ = "scoring_handoffs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(Integer, unique=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"),
                                            index=True)
    stage: Mapped[str] = mapped_column(String(30))
    sent_to: Mapped[str] = mapped_column(String(400), default="")  # address, webhook, or why not
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class FitHistory(db.Model):
    """A contact's fit at the end of each day it changed (the history chart's fit line)."""

    __tablename__ = "scoring_fit_history"

    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"),
                                            primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    fit: Mapped[int] = mapped_column(Integer)


class ScoringState(db.Model):
    """One row (id 1): the epoch engagement weights count from, and the half-life they use.
    Changed only together with every weight and acc (`recalc`), never alone."""

    __tablename__ = "scoring_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[datetime] = mapped_column(UTCDateTime)
    epoch_seconds: Mapped[float] = mapped_column(Float)  # the epoch as Unix time, for SQL
    half_life_days: Mapped[float] = mapped_column(Float, default=30.0)
    inactivity_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
