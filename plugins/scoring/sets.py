"""Set statements over score rows, shared by the recalculation and the inactivity tick.

Scores are always brought back to what their sources say, never patched in Python:
`refresh_acc` sets acc to the sum of a contact's award weights, `refresh_fit` sets fit to the
sum of the points of the active fit rules they match. On PostgreSQL the rows are locked first
(`lock_scores`): an UPDATE whose sum was read before a concurrent `acc = acc + delta` committed
would otherwise overwrite it, while a statement that starts after taking the locks sees it.

Lists of contact ids travel as one parameter (`among`: a JSON array on SQLite, an array on
PostgreSQL), so a range of 50,000 contacts is still one statement under either backend's limit
on parameters.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
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
from engine.db import db, utcnow
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


def dialect() -> str:
    return db.session.get_bind().dialect.name


def insert(table: Any) -> Any:
    """`insert` with ON CONFLICT for the backend in use."""
    return dialect_insert(dialect())(table)


def live(contact_id: Any) -> ColumnElement[bool]:
    """The contact `contact_id` is neither merged nor erased: an erased person's remaining
    activity rows (kept without anything that names them) never score again."""
    return exists(select(C.id).where(C.id == contact_id,
                                     C.status.notin_(("merged", "erased"))))


def among(column: Any, ids: Sequence[int]) -> ColumnElement[bool]:
    """`column IN ids` with the ids as a single parameter, however many there are."""
    if dialect() == "postgresql":
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


def ensure_scores(contacts: ColumnElement[bool]) -> None:
    """Score rows (fit 0, acc 0) for the contacts matching `contacts`, a condition on the
    contacts table, where they have none yet."""
    poor = 0 < int(settings()["poor_fit_below"])
    rows = select(C.id, literal(0), literal(0.0), literal(poor),
                  literal(utcnow(), S.c.updated_at.type)).where(contacts)
    db.session.execute(insert(S).from_select(
        ["contact_id", "fit", "acc", "poor_fit", "updated_at"], rows).on_conflict_do_nothing())


def lock_scores(condition: ColumnElement[bool]) -> None:
    """Lock these score rows until the transaction ends (PostgreSQL; SQLite has one writer),
    in contact id order: writers that lock several rows in one order never deadlock."""
    if dialect() != "sqlite":
        db.session.execute(select(S.c.contact_id).where(condition)
                           .order_by(S.c.contact_id).with_for_update())


def acc_sum() -> Any:
    return func.coalesce(select(func.sum(W.c.weight)).where(
        W.c.contact_id == S.c.contact_id).scalar_subquery(), 0.0)


def refresh_acc(condition: ColumnElement[bool]) -> None:
    """acc = Σ weight of each score row matching `condition` (locked first)."""
    lock_scores(condition)
    db.session.execute(update(S).where(condition).values(acc=acc_sum(), updated_at=utcnow()))


def fit_sum() -> Any:
    return func.coalesce(select(func.sum(R.c.points)).select_from(
        M.join(R, R.c.id == M.c.rule_id)).where(
        M.c.contact_id == S.c.contact_id, R.c.kind == "fit", R.c.active.is_(True))
        .scalar_subquery(), 0)


def refresh_fit(contact_ids: Sequence[int]) -> list[int]:
    """fit = Σ points of the active fit rules each of these contacts matches (score rows made
    where missing, then locked), poor fit with it, and today's point of the fit history for
    those whose fit changed. Returns their ids."""
    if not contact_ids:
        return []
    ensure_scores(among(C.id, contact_ids))
    mine = among(S.c.contact_id, contact_ids)
    lock_scores(mine)
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
