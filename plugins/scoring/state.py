"""The epoch and half-life every engagement weight is counted with (`models.ScoringState`), and
the one lock that keeps scoring's writers apart on PostgreSQL.

Deliveries of the event stream score contacts side by side: each holds the scoring lock
shared (`shared()`, also taken by `held()`) and touches only its own partition's contacts, whose
score rows it locks in id order. Everything that rewrites scores across contacts — a rule
saved or deleted, a recalculation range, the inactivity check, a rebase, a new half-life —
holds it alone (`alone()`, `exclusive()`), one short transaction at a time. So a rule never
changes under a delivery that is scoring with it, a recalculation never interleaves with
scoring (no lost update, no deadlock), and a delivery waits at most one range. SQLite has one
writer at a time anyway.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text

from engine.contacts.store import dialect_insert
from engine.db import db, is_sqlite, utcnow
from plugins.scoring import decay
from plugins.scoring.models import ScoringState

DEFAULT_HALF_LIFE = 30.0


@dataclass(frozen=True)
class State:
    epoch: float  # Unix seconds
    half_life_days: float

    def weight(self, points: float, at: datetime) -> float:
        return decay.weight(points, at, self.epoch, self.half_life_days)

    def value(self, acc: float, now: datetime | None = None) -> float:
        return decay.value(acc, now or utcnow(), self.epoch, self.half_life_days)

    def threshold(self, score: float, now: datetime | None = None) -> float:
        return decay.acc_threshold(score, now or utcnow(), self.epoch, self.half_life_days)


def _ensure() -> None:
    if db.session.get(ScoringState, 1) is None:
        now = utcnow()
        insert = dialect_insert(db.session.get_bind().dialect.name)
        db.session.execute(insert(ScoringState.__table__).values(
            id=1, epoch=now, epoch_seconds=decay.seconds(now),
            half_life_days=DEFAULT_HALF_LIFE).on_conflict_do_nothing())


LOCK_KEY = 0x5C0_12E6  # the scoring lock's key among the database's advisory locks


def shared() -> None:
    """Hold the scoring lock shared until the transaction ends (PostgreSQL)."""
    if not is_sqlite():
        db.session.execute(text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": LOCK_KEY})


def alone() -> None:
    """Hold the scoring lock alone until the transaction ends (PostgreSQL). Take it before
    `held()` in the same transaction: asking for it while holding it shared could deadlock
    with another writer doing the same."""
    if not is_sqlite():
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})


def held() -> State:
    """The state, inside a `write()`, with the scoring lock shared (created if missing)."""
    shared()
    _ensure()
    epoch, half_life = db.session.execute(
        select(ScoringState.epoch_seconds, ScoringState.half_life_days)
        .where(ScoringState.id == 1)).one()
    return State(epoch, half_life)


def exclusive() -> ScoringState:
    """The state row, inside a `write()`, with the scoring lock held alone."""
    alone()
    _ensure()
    return db.session.scalars(select(ScoringState).where(ScoringState.id == 1)).one()


def read() -> State:
    """The state for reading only (explanations, lists): no lock, a default when none yet."""
    row = db.session.execute(select(ScoringState.epoch_seconds, ScoringState.half_life_days)
                             .where(ScoringState.id == 1)).first()
    if row is None:
        return State(decay.seconds(utcnow()), DEFAULT_HALF_LIFE)
    return State(row[0], row[1])
