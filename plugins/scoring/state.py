"""The epoch and half-life every engagement weight is counted with (`models.ScoringState`).

Whoever writes weights or accs reads the state with `held()` inside their `write()`: on
PostgreSQL a shared lock on its row, so a rebase or a half-life change (which take it
exclusively, `exclusive()`) never interleaves with scoring; SQLite has one writer anyway.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

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


def held() -> State:
    """The state, inside a `write()`, shared-locked until it commits (created if missing)."""
    _ensure()
    query = select(ScoringState.epoch_seconds, ScoringState.half_life_days) \
        .where(ScoringState.id == 1)
    if not is_sqlite():
        query = query.with_for_update(read=True)
    epoch, half_life = db.session.execute(query).one()
    return State(epoch, half_life)


def exclusive() -> ScoringState:
    """The state row, inside a `write()`, locked against all scoring until it commits."""
    _ensure()
    query = select(ScoringState).where(ScoringState.id == 1)
    if not is_sqlite():
        query = query.with_for_update()
    return db.session.scalars(query).one()


def read() -> State:
    """The state for reading only (explanations, lists): no lock, a default when none yet."""
    row = db.session.execute(select(ScoringState.epoch_seconds, ScoringState.half_life_days)
                             .where(ScoringState.id == 1)).first()
    if row is None:
        return State(decay.seconds(utcnow()), DEFAULT_HALF_LIFE)
    return State(row[0], row[1])
