"""Inactivity rules: points (usually negative) once a contact has done nothing for `days` days.

A quiet spell earns one award, dated the moment it reached `days` days (last activity + days),
whenever the check happens to run, so the points decay from that moment as any others do. Two
ways reach the same awards:
- `tick()` (every few minutes): the contacts whose `last_active_at` crossed the line since the
  previous tick and who have no award of the rule dated at or after last_active_at + days;
- `history_awards()` (a rule's recalculation): each gap between a contact's consecutive
  activities (`rules.ACTIVE_TYPES`) of at least `days` days, and the gap from the last one to
  now, found with a window function over the activity table.

Dates are computed in SQL with whole seconds added to the stored value, keeping its
microseconds, so an award's moment compares exactly with `last_active_at` on both backends.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, and_, exists, func, literal, null, select, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import Select
from sqlalchemy.sql.functions import FunctionElement

from engine import events
from engine.db import UTCDateTime, db, utcnow, write
from engine.events.models import Activity
from engine.jobs import job
from plugins.scoring import stages, state
from plugins.scoring.models import ScoringRule, ScoringState
from plugins.scoring.rules import ACTIVE_TYPES
from plugins.scoring.sets import (
    AWARD_COLUMNS,
    S,
    W,
    among,
    insert,
    live,
    lock_scores,
    poor_at_zero,
    score_changed,
    weight_sql,
)

TICK_SECONDS = 300
# How far before the previous tick a crossing is still looked for: a tick that failed, a clock
# set back, an activity stored late. Awards are never doubled (the NOT EXISTS), so it only costs
# a slightly larger range of the last_active_at index.
SLACK = timedelta(days=1)
A = Activity.__table__.c


class _Later(FunctionElement[datetime]):
    """`_Later(column, seconds)`: a datetime column plus whole seconds, in its stored form."""

    type = UTCDateTime()
    inherit_cache = True
    name = "scoring_later"


@compiles(_Later)
def _later_sqlite(element: _Later, compiler: Any, **kw: Any) -> str:
    # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff'. SQLite's date functions keep milliseconds only
    # (and round), so the whole seconds are moved and the stored fraction is put back.
    column, seconds = (compiler.process(c, **kw) for c in element.clauses)
    return (f"(strftime('%Y-%m-%d %H:%M:%S', substr({column}, 1, 19), "
            f"'+' || {seconds} || ' seconds') || substr({column}, 20))")


@compiles(_Later, "postgresql")
def _later_postgresql(element: _Later, compiler: Any, **kw: Any) -> str:
    column, seconds = (compiler.process(c, **kw) for c in element.clauses)
    return f"({column} + make_interval(secs => ({seconds})::float8))"


def plus_days(column: Any, days: int) -> Any:
    """`column` + `days` days in SQL (exactly 86,400 seconds each: UTC has no DST)."""
    return _Later(column, literal(int(days) * 86_400, Integer))


def history_awards(rule: ScoringRule, low: int, high: int, held: state.State,
                   now: datetime) -> Select[Any]:
    """The awards (`AWARD_COLUMNS`) an inactivity rule gives the contacts with ids in
    [low, high), from their activity up to `now`: one for each quiet spell of `days` days."""
    following = func.lead(A.occurred_at).over(partition_by=A.contact_id,
                                              order_by=(A.occurred_at, A.id))
    acts = select(A.contact_id, A.occurred_at.label("at"), following.label("next_at")).where(
        A.type.in_(ACTIVE_TYPES), A.contact_id >= low, A.contact_id < high,
        live(A.contact_id)).subquery()
    due = plus_days(acts.c.at, rule.days)
    return select(acts.c.contact_id, literal(rule.id), literal(rule.points), due, null(),
                  literal(""), weight_sql(rule.points, due, held)).where(
        func.coalesce(acts.c.next_at, literal(now, UTCDateTime())) >= due)


def sync_last_active(low: int, high: int) -> None:
    """Score rows for the contacts with ids in [low, high) that were ever active, with
    `last_active_at` at least their last activity (from history where it is missing)."""
    last = select(A.contact_id, func.max(A.occurred_at).label("at")).where(
        A.type.in_(ACTIVE_TYPES), A.contact_id >= low, A.contact_id < high,
        live(A.contact_id)).group_by(A.contact_id).subquery()
    rows = select(last.c.contact_id, literal(0), literal(0.0), literal(poor_at_zero()),
                  literal(utcnow(), UTCDateTime()), last.c.at).where(last.c.at.is_not(None))
    upsert = insert(S).from_select(
        ["contact_id", "fit", "acc", "poor_fit", "updated_at", "last_active_at"], rows)
    db.session.execute(upsert.on_conflict_do_update(
        index_elements=[S.c.contact_id], set_={"last_active_at": upsert.excluded.last_active_at},
        where=S.c.last_active_at.is_(None) | (S.c.last_active_at < upsert.excluded.last_active_at)))


@job("scoring.inactivity", every=TICK_SECONDS)
def tick() -> int:
    """Award the quiet spells that reached their length since the last tick; returns how many
    contacts were given points. Each of them gets one `score_changed` event."""
    now = utcnow()
    checked = db.session.scalar(select(ScoringState.inactivity_checked_at)
                                .where(ScoringState.id == 1))
    with write():
        state.alone()  # never at once with a delivery or a range of a recalculation
        held = state.held()
        query = select(ScoringRule).where(ScoringRule.kind == "inactivity",
                                          ScoringRule.active.is_(True)).order_by(ScoringRule.id)
        given: dict[int, list[tuple[str, float]]] = defaultdict(list)
        award_ids: list[int] = []
        for rule in db.session.scalars(query).all():
            for award_id, contact_id, weight in _award_quiet(rule, held, now, checked):
                award_ids.append(award_id)
                given[contact_id].append((rule.name, held.value(weight, now)))
        if given:
            _add_to_acc(sorted(given), award_ids, given, held, now)
    with write() as session:
        session.execute(update(ScoringState.__table__).where(ScoringState.id == 1)
                        .values(inactivity_checked_at=now))
    return len(given)


def _award_quiet(rule: ScoringRule, held: state.State, now: datetime,
                 checked: datetime | None) -> list[Any]:
    """Insert this rule's awards for the quiet spells that reached `days` days by `now`."""
    due = plus_days(S.c.last_active_at, rule.days)
    window = [S.c.last_active_at <= now - timedelta(days=rule.days)]
    if checked is not None:
        window.append(S.c.last_active_at > checked - timedelta(days=rule.days) - SLACK)
    already = exists(select(W.c.id).where(W.c.contact_id == S.c.contact_id,
                                          W.c.rule_id == rule.id, W.c.occurred_at >= due))
    rows = select(S.c.contact_id, literal(rule.id), literal(rule.points), due, null(),
                  literal(""), weight_sql(rule.points, due, held)).where(
        and_(*window), live(S.c.contact_id), ~already)
    return list(db.session.execute(insert(W).from_select(AWARD_COLUMNS, rows)
                                   .returning(W.c.id, W.c.contact_id, W.c.weight)))


def _add_to_acc(contacts: list[int], award_ids: list[int],
                given: dict[int, list[tuple[str, float]]], held: state.State,
                now: datetime) -> None:
    """acc += the new awards' weights (rows locked first), then one `score_changed` each."""
    lock_scores(contacts)
    added = select(func.sum(W.c.weight)).where(among(W.c.id, award_ids),
                                               W.c.contact_id == S.c.contact_id)
    scores = db.session.execute(
        update(S).where(among(S.c.contact_id, contacts))
        .values(acc=S.c.acc + added.scalar_subquery(), updated_at=now)
        .returning(S.c.contact_id, S.c.fit, S.c.acc)).all()
    rows = [score_changed(contact_id, fit, held.value(acc, now),
                          sum(v for _, v in given[contact_id]),
                          [name for name, _ in given[contact_id]], now)
            for contact_id, fit, acc in scores]
    events.record_many(sorted(rows, key=lambda row: row["contact_id"]))
    stages.advance(contacts)
