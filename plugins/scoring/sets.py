"""Set statements over score rows, shared by the deliveries, the recalculation and the
inactivity tick; and the `score_changed` event they record.

Scores are always brought back to what their sources say, never patched in Python:
`refresh_acc` sets acc to the sum of a contact's award weights, `refresh_fit` sets fit to the
sum of the points of the active fit rules they match. On PostgreSQL the rows are locked first
(`lock_scores`), in contact id order: an UPDATE whose sum was read before a concurrent
`acc = acc + delta` committed would otherwise overwrite it, while a statement that starts after
taking the locks sees it; and writers that lock several rows in one order never deadlock.

Lists of contact ids travel as one parameter (`among`: a JSON array on SQLite, an array on
PostgreSQL), so a range of 50,000 contacts is still one statement under either backend's limit
on parameters.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    Float,
    String,
    any_,
    bindparam,
    exists,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import ColumnElement

from engine.contacts.models import Contact
from engine.contacts.store import dialect_insert
from engine.db import db, is_sqlite, utcnow
from plugins.scoring import decay
from plugins.scoring.models import (
    ContactScore,
    FitHistory,
    FitMatch,
    ScoreAward,
    ScoringRule,
)
from plugins.scoring.settings import settings
from plugins.scoring.state import State

C = Contact.__table__.c
S = ContactScore.__table__
W = ScoreAward.__table__
M = FitMatch.__table__
R = ScoringRule.__table__
H = FitHistory.__table__
AWARD_COLUMNS = ["contact_id", "rule_id", "points", "occurred_at", "event_id", "bucket", "weight"]


def insert(table: Any) -> Any:
    """`insert` with ON CONFLICT for the backend in use."""
    return dialect_insert(db.session.get_bind().dialect.name)(table)


def live(contact_id: Any) -> ColumnElement[bool]:
    """The contact `contact_id` is neither merged nor erased: an erased person's remaining
    activity rows (kept without anything that names them) never score again."""
    return exists(select(C.id).where(C.id == contact_id,
                                     C.status.notin_(("merged", "erased"))))


def among(column: Any, ids: Sequence[int]) -> ColumnElement[bool]:
    """`column IN ids` with the ids as a single parameter, however many there are."""
    if not is_sqlite():
        return column == any_(bindparam(None, list(ids), type_=ARRAY(BigInteger)))
    each = func.json_each(bindparam(None, json.dumps(list(ids)), type_=String)) \
        .table_valued("value")
    return column.in_(select(each.c.value))


def weight_sql(points: Any, at: Any, held: State) -> Any:
    """An award's weight in SQL, `points·2^((t − epoch)/h)`, as `State.weight` computes it
    (`points` a number or a column)."""
    exponent = (decay.unix_seconds(at) - literal(held.epoch, Float)) \
        / literal(held.half_life_days * decay.DAY, Float)
    if isinstance(points, int | float):
        points = literal(float(points), Float)
    return points * decay.power2(exponent)


def poor_at_zero() -> bool:
    """The poor-fit flag of a new score row (fit 0): set when the floor is above 0."""
    return 0 < int(settings()["poor_fit_below"])


def _condition(column: Any, contacts: Iterable[int] | ColumnElement[bool]) -> Any:
    """A condition as it is, or `column` among these ids (None when there are none)."""
    if isinstance(contacts, ColumnElement):
        return contacts
    ids = sorted(set(contacts))
    return among(column, ids) if ids else None


def ensure_scores(contacts: Iterable[int] | ColumnElement[bool]) -> None:
    """Score rows (fit 0, acc 0) for these contacts (ids, or a condition on the contacts
    table) where they have none yet, in one statement; a row a concurrent writer created
    first is left as it is."""
    which = _condition(C.id, contacts)
    if which is None:
        return
    rows = select(C.id, literal(0), literal(0.0), literal(poor_at_zero()),
                  literal(utcnow(), S.c.updated_at.type)).where(which)
    db.session.execute(insert(S).from_select(
        ["contact_id", "fit", "acc", "poor_fit", "updated_at"], rows).on_conflict_do_nothing())


def lock_scores(contact_ids: Iterable[int]) -> None:
    """Lock these contacts' score rows until the transaction ends (PostgreSQL; SQLite has one
    writer at a time), in contact id order: writers that lock several rows in one order never
    deadlock."""
    which = _condition(S.c.contact_id, contact_ids)
    if which is not None and not is_sqlite():
        db.session.execute(select(S.c.contact_id).where(which)
                           .order_by(S.c.contact_id).with_for_update()).all()


def acc_sum() -> Any:
    """The sum of the award weights of the score row being updated (0 without awards)."""
    return func.coalesce(select(func.sum(W.c.weight)).where(
        W.c.contact_id == S.c.contact_id).scalar_subquery(), 0.0)


def refresh_acc(contact_ids: Iterable[int]) -> None:
    """acc = Σ weight for these contacts' score rows, locked first (after merges and
    recalculations: whatever awards moved, the sum is right)."""
    ids = sorted(set(contact_ids))
    if not ids:
        return
    lock_scores(ids)
    db.session.execute(update(S).where(among(S.c.contact_id, ids))
                       .values(acc=acc_sum(), updated_at=utcnow()))


def fit_sum() -> Any:
    """The points of the active fit rules the score row's contact matches. A rule being
    deleted counts no longer, as deliveries have already stopped using it; `forget_rule` only
    removes its matches afterwards."""
    return func.coalesce(select(func.sum(R.c.points)).select_from(
        M.join(R, R.c.id == M.c.rule_id)).where(
        M.c.contact_id == S.c.contact_id, R.c.kind == "fit", R.c.active.is_(True),
        R.c.status != "deleting").scalar_subquery(), 0)


def refresh_fit(contact_ids: Iterable[int]) -> list[int]:
    """fit = Σ points of the active fit rules each of these contacts matches (score rows made
    where missing, then locked), poor fit with it, and today's point of the fit history for
    those whose fit changed. Returns their ids."""
    ids = sorted(set(contact_ids))
    if not ids:
        return []
    ensure_scores(ids)
    lock_scores(ids)
    mine = among(S.c.contact_id, ids)
    total = fit_sum()
    changed = sorted(db.session.scalars(
        update(S).where(mine, S.c.fit != total)
        .values(fit=total, poor_fit=total < int(settings()["poor_fit_below"]),
                updated_at=utcnow())
        .returning(S.c.contact_id)))
    if changed:
        upsert = insert(H)
        today = literal(utcnow().date(), Date)
        upsert = upsert.from_select(["contact_id", "day", "fit"], select(
            S.c.contact_id, today, S.c.fit).where(among(S.c.contact_id, changed)))
        db.session.execute(upsert.on_conflict_do_update(
            index_elements=[H.c.contact_id, H.c.day], set_={"fit": upsert.excluded.fit}))
    return changed


def score_changed(contact_id: int, fit: int, engagement: float, change: float,
                  rules: Iterable[str], now: datetime) -> dict[str, Any]:
    """The `score_changed` event of a contact whose scores moved by `change` (combined), for
    `engine.events.record_many`; `rules` names what moved them, in the order given."""
    return {"type": "score_changed", "contact_id": contact_id, "occurred_at": now,
            "properties": {"fit": fit, "engagement": round(engagement, 2),
                           "combined": round(fit + engagement, 2), "change": round(change, 2),
                           "rules": ", ".join(dict.fromkeys(rules))}}
