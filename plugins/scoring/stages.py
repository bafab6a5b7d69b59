"""Lifecycle stages that follow the scores: poor fit marked, contacts moved forward to
marketing- or sales-qualified at the thresholds in the settings, never backwards, never out of
"other", and the stage change put on the event stream as any other change of the field.

`advance()` serves one delivered batch and a recalculation of thousands of contacts alike, so
it works with set statements: one UPDATE marks poor fit, one SELECT finds who qualifies, one
guarded UPDATE per (old stage, new stage) moves them, one UPDATE notes `qualified_at`. The
events are the contact store's own (`store.changed`: `field_changed` + `stage_changed`),
written with the transaction's other deferred events in one INSERT.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.contacts import store
from engine.contacts.models import Contact
from engine.db import db, utcnow
from plugins.scoring import decay
from plugins.scoring.sets import S, among, ensure_scores
from plugins.scoring.settings import settings
from plugins.scoring.state import read

ORDER = ("subscriber", "lead", "marketing_qualified", "sales_qualified", "opportunity",
         "customer", "evangelist")
QUALIFIED = frozenset(ORDER[2:])  # marketing-qualified or later
MOVABLE = ("", "subscriber", "lead", "marketing_qualified")  # "other" never moves by itself
CT = Contact.__table__


def rank(stage: str) -> int:
    """A stage's place in the order; "other" (and anything unknown) has none: -1."""
    return ORDER.index(stage) if stage in ORDER else (0 if stage == "" else -1)


def target(stage: str, fit: int, combined: float, conf: dict[str, Any]) -> str | None:
    """The stage a contact of these scores moves to from `stage`, or None to stay: the
    furthest of sales- (when `sql_combined` is set) and marketing-qualified whose thresholds
    both scores reach, if it lies ahead; never for a poor fit, never out of "other"."""
    if fit < int(conf["poor_fit_below"]) or rank(stage) < 0:
        return None
    reached = None
    sql_combined = int(conf["sql_combined"])
    if sql_combined and decay.reaches(combined, sql_combined) and fit >= int(conf["sql_fit"]):
        reached = "sales_qualified"
    elif decay.reaches(combined, int(conf["mql_combined"])) and fit >= int(conf["mql_fit"]):
        reached = "marketing_qualified"
    if reached is None or rank(reached) <= rank(stage):
        return None
    return reached


def advance(contact_ids: Iterable[int]) -> list[int]:
    """Mark poor fit and move qualified contacts forward (inside `write()`); returns the ids
    of the contacts whose stage moved. Contacts without a score row have nothing to move."""
    ids = sorted(set(contact_ids))
    if not ids:
        return []
    conf = settings()
    floor = int(conf["poor_fit_below"])
    state, now = read(), utcnow()
    factor = decay.factor(now, state.epoch, state.half_life_days)
    moves: dict[tuple[str, str], list[int]] = defaultdict(list)
    poor = S.c.fit < floor
    db.session.execute(update(S).where(among(S.c.contact_id, ids), S.c.poor_fit != poor)
                       .values(poor_fit=poor))
    rows = db.session.execute(
        select(CT.c.id, CT.c.lifecycle_stage, S.c.fit, S.c.acc)
        .join(S, S.c.contact_id == CT.c.id)
        .where(among(CT.c.id, ids), CT.c.lifecycle_stage.in_(MOVABLE),
               CT.c.status.notin_(("merged", "erased")), S.c.fit >= floor))
    for contact_id, stage, fit, acc in rows:
        new = target(stage or "", fit, fit + acc * factor, conf)
        if new is not None:
            moves[(stage, new)].append(contact_id)
    moved: list[int] = []
    for (old, new), group in sorted(moves.items()):
        done = list(db.session.scalars(
            update(CT).where(among(CT.c.id, group), CT.c.lifecycle_stage == old)
            .values(lifecycle_stage=new, updated_at=now).returning(CT.c.id)))
        for contact_id in sorted(done):
            store.changed(contact_id, {"lifecycle_stage": (old, new)})
            loaded = db.session.identity_map.get(Session.identity_key(Contact, contact_id))
            if loaded is not None:  # a contact the caller holds reads the new stage
                db.session.expire(loaded, ["lifecycle_stage", "updated_at"])
        moved += done
    note_qualified(moved, ensure=False)
    return sorted(moved)


def note_qualified(contact_ids: Iterable[int], ensure: bool = True) -> None:
    """`qualified_at` = now for these contacts, unless they qualified before (the first time
    counts); `ensure` creates the score rows missing (a stage set by hand)."""
    ids = sorted(set(contact_ids))
    if not ids:
        return
    if ensure:
        ensure_scores(ids)
    db.session.execute(update(S).where(among(S.c.contact_id, ids), S.c.qualified_at.is_(None))
                       .values(qualified_at=utcnow()))
