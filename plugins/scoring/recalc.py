"""Recalculation: after a rule is saved or deleted, after the half-life changes, and the epoch's
periodic move forward. Set statements only, never a loop over contacts.

A rule's recalculation (`scoring.recalculate`) goes through the contacts a range of ids at a
time, each range one short transaction, as a segment's build does, and stops when the rule is
edited again (that version's recalculation does the work):
- fit rule: its matches are synced with its conditions (DELETE the contacts that no longer
  match, INSERT … SELECT those that newly do), and the fit of every contact whose match may have
  changed is set to the sum of the active fit rules they match;
- engagement rule: its awards are deleted and inserted again from the activity table (the
  rule's filters, its cap with `row_number()` per contact and period, the weight for the
  current epoch and half-life), then each touched contact's acc is set to the sum of weights;
- inactivity rule: the same, with the awards computed from the gaps in each contact's
  activity (`inactivity.history_awards`).
After each range the touched contacts may move forward a stage (`stages.advance`); at the end
the segments testing scores are rebuilt, since a bulk change records no per-contact events.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, case, delete, func, literal, or_, select, union, update
from sqlalchemy.sql import ColumnElement, Select

from engine.db import MAX_ROW_ID, db, is_sqlite, utcnow, write
from engine.events.models import Activity
from engine.jobs import job, outbox
from engine.plugins import current
from engine.segments import service as segments
from plugins.scoring import decay, inactivity, rules, stages, state
from plugins.scoring.models import ScoringRule
from plugins.scoring.sets import (
    AWARD_COLUMNS,
    C,
    M,
    S,
    W,
    acc_sum,
    ensure_scores,
    insert,
    live,
    refresh_acc,
    refresh_fit,
    weight_sql,
)
from plugins.scoring.settings import settings

CHUNK = 50_000  # contact ids per transaction
A = Activity.__table__.c


# --- a rule ---------------------------------------------------------------------------------

TINY = 1e-290  # weights below this are worth nothing, and scaling them could underflow


@job("scoring.recalculate")
def recalculate(rule_id: int, version: int) -> None:
    """Bring every contact's scores in line with this version of the rule."""
    rule = db.session.get(ScoringRule, rule_id)
    if rule is None or rule.version != version:
        return
    low, top = _bounds(select(C.id))
    touched = 0
    for start in range(low, top, CHUNK):
        with write():
            state.alone()  # no delivery scores while a range is rewritten
            held = state.held()
            rule = _claim(rule_id, lambda r: r.version == version)
            if rule is None:
                return  # edited or deleted since: a newer job does the work
            changed = _recalculate_range(rule, start, start + CHUNK, held)
            stages.advance(changed)
            rule.progress = _progress(start, low, top)
            touched += len(changed)
    with write():
        rule = _claim(rule_id, lambda r: r.version == version)
        if rule is None:
            return
        rule.status, rule.progress = "ready", 1.0
    if touched:
        rebuild_score_segments()


def _recalculate_range(rule: ScoringRule, low: int, high: int,
                       held: state.State) -> list[int]:
    if rule.kind == "fit":
        return _fit_range(rule, low, high)
    if rule.kind == "inactivity":
        inactivity.sync_last_active(low, high)
        source = inactivity.history_awards(rule, low, high, held, utcnow())
    else:
        source = _engagement_awards(rule, low, high, held)
    return _replace_awards(rule.id, low, high, source if rule.active else None)


def _fit_range(rule: ScoringRule, low: int, high: int) -> list[int]:
    """Sync the rule's matches in [low, high) (an inactive rule matches nobody); then fit for
    every contact whose fit may depend on it: those who left, and those matching now (their
    points may have changed). Returns the contacts whose fit changed."""
    mine = and_(M.c.rule_id == rule.id, M.c.contact_id >= low, M.c.contact_id < high)
    in_range = and_(C.id >= low, C.id < high)
    if rule.active:
        compiled = rules.fit_compiled(rule.definition)
        test = compiled.bulk if compiled.bulk is not None else compiled.sql
        staying = select(C.id).where(in_range, test)
        left = list(db.session.scalars(delete(M).where(mine, M.c.contact_id.notin_(staying))
                                       .returning(M.c.contact_id)))
        matched = select(M.c.contact_id).where(M.c.rule_id == rule.id, M.c.contact_id == C.id)
        entering = select(literal(rule.id), C.id, literal(utcnow(), M.c.since.type)) \
            .where(in_range, test, ~matched.exists())
        db.session.execute(insert(M).from_select(["rule_id", "contact_id", "since"], entering)
                           .on_conflict_do_nothing())
    else:
        left = list(db.session.scalars(delete(M).where(mine).returning(M.c.contact_id)))
    now_matching = db.session.scalars(select(M.c.contact_id).where(mine))
    return refresh_fit(sorted(set(left).union(now_matching)))


def _engagement_awards(rule: ScoringRule, low: int, high: int,
                       held: state.State) -> Select[Any]:
    """The awards (`AWARD_COLUMNS`) an engagement rule gives the contacts in [low, high) from
    their events: those passing its filters, at most `cap_count` per contact and period,
    taken in (occurred_at, id) order."""
    capped, points = bool(rule.cap_count), rules.points_sql(rule)
    bucket = decay.bucket_sql(A.occurred_at, rule.cap_period) if capped else literal("")
    columns = [A.contact_id, A.occurred_at, A.id, bucket.label("bucket"),
               weight_sql(points, A.occurred_at, held).label("weight")]
    where = and_(rules.event_filter_sql(rule), A.contact_id >= low, A.contact_id < high,
                 live(A.contact_id))
    if not capped:
        return select(A.contact_id, literal(rule.id), points, *columns[1:]).where(where)
    partition = (A.contact_id,) if rule.cap_period == "ever" else (A.contact_id, bucket)
    rank = func.row_number().over(partition_by=partition, order_by=(A.occurred_at, A.id))
    ranked = select(*columns, points.label("points"), rank.label("n")).where(where).subquery()
    return select(ranked.c.contact_id, literal(rule.id), ranked.c.points,
                  ranked.c.occurred_at, ranked.c.id, ranked.c.bucket, ranked.c.weight) \
        .where(ranked.c.n <= rule.cap_count)


def rescore(contact_ids: list[int], engagement_rules: list[ScoringRule],
            held: state.State) -> list[int]:
    """A fresh calculation of these engagement rules for a few contacts (inside a `write()`):
    when a browser is recognised as a contact, its earlier visits join the contact's timeline
    and score as if the contact had been known all along. Returns the contacts touched.

    A rule is skipped for a contact with no activity of its event type (one query per
    contact): such a contact has no awards of it either, since an award's event is the
    contact's, and identification stays cheap however many rules there are."""
    touched: set[int] = set()
    for contact_id in sorted(set(contact_ids)):
        kinds = set(db.session.scalars(select(A.type).where(A.contact_id == contact_id)
                                       .distinct()))
        for rule in engagement_rules:
            if rule.event not in kinds:
                continue
            source = _engagement_awards(rule, contact_id, contact_id + 1, held)
            touched.update(_replace_awards(rule.id, contact_id, contact_id + 1, source))
    return sorted(touched)


def _replace_awards(rule_id: int, low: int, high: int, source: Select[Any] | None) -> list[int]:
    """Replace the rule's awards in [low, high) with `source` (none: take them away), then
    set acc for every contact that had or now has one. Returns those contacts."""
    mine = and_(W.c.rule_id == rule_id, W.c.contact_id >= low, W.c.contact_id < high)
    holders = select(W.c.contact_id).where(mine).distinct()
    before = set(db.session.scalars(holders))
    db.session.execute(delete(W).where(mine))
    if source is not None:
        db.session.execute(insert(W).from_select(AWARD_COLUMNS, source).on_conflict_do_nothing())
    after = set(db.session.scalars(holders))
    ensure_scores(after - before)
    touched = sorted(before | after)
    refresh_acc(touched)
    return touched


# --- a deleted rule -------------------------------------------------------------------------

@job("scoring.forget_rule")
def forget_rule(rule_id: int) -> None:
    """Take back what a deleted rule gave (awards, fit matches), range by range, then delete
    it. Stops if the rule was saved again meanwhile (no longer "deleting")."""
    rule = db.session.get(ScoringRule, rule_id)
    if rule is None or not _deleting(rule):
        return
    low, top = _bounds(union(select(W.c.contact_id).where(W.c.rule_id == rule_id),
                             select(M.c.contact_id).where(M.c.rule_id == rule_id)))
    touched = 0
    for start in range(low, top, CHUNK):
        with write():
            state.alone()
            state.held()
            rule = _claim(rule_id, _deleting)
            if rule is None:
                return
            changed = _replace_awards(rule_id, start, start + CHUNK, None)
            left = db.session.scalars(delete(M).where(
                M.c.rule_id == rule_id, M.c.contact_id >= start,
                M.c.contact_id < start + CHUNK).returning(M.c.contact_id))
            changed = sorted(set(changed).union(refresh_fit(sorted(left))))
            stages.advance(changed)
            rule.progress = _progress(start, low, top)
            touched += len(changed)
    with write() as session:
        state.alone()
        rule = _claim(rule_id, _deleting)
        if rule is None:
            return
        # What a delivery gave in the meantime goes too, with its weight, not by the cascade
        changed = _replace_awards(rule_id, 0, MAX_ROW_ID, None)
        refresh_fit(sorted(db.session.scalars(delete(M).where(M.c.rule_id == rule_id)
                                              .returning(M.c.contact_id))))
        stages.advance(changed)
        session.delete(rule)
    if touched:
        rebuild_score_segments()


def _deleting(rule: ScoringRule) -> bool:
    return rule.status == "deleting"


# --- the half-life and the epoch ------------------------------------------------------------

def queue_half_life(half_life_days: Any) -> None:
    """Queue the recalculation for a new half-life (inside the settings' transaction)."""
    outbox.add("scoring.half_life", half_life_days=float(half_life_days))


@job("scoring.half_life")
def recalculate_half_life(half_life_days: float) -> None:
    """Every weight and acc for a new half-life, in one transaction with the state locked, so
    no score is ever counted with one half-life and stored with another."""
    wanted = float(half_life_days)
    current().refresh(force=True)
    if float(settings()["half_life_days"]) != wanted:
        return  # changed again since: the job of the newer value does it
    with write():
        row = state.exclusive()
        if row.half_life_days == wanted:
            return
        db.session.execute(update(W).values(weight=weight_sql(
            W.c.points, W.c.occurred_at, state.State(row.epoch_seconds, wanted))))
        db.session.execute(update(S).where(or_(S.c.acc != 0, _has_awards())).values(acc=acc_sum()))
        row.half_life_days = wanted
    _advance_all()
    rebuild_score_segments()


@job("scoring.rebase", every=3600)
def rebase() -> bool:
    """Move the epoch to now when weights have grown large (`decay.needs_rebase`): every acc
    and weight times 2^(−(now − epoch)/h), which leaves every engagement value unchanged."""
    now, seen = utcnow(), state.read()
    if not decay.needs_rebase(now, seen.epoch, seen.half_life_days):
        return False
    with write():
        row = state.exclusive()
        if not decay.needs_rebase(now, row.epoch_seconds, row.half_life_days):
            return False
        factor = decay.factor(now, row.epoch_seconds, row.half_life_days)
        db.session.execute(update(S).where(S.c.acc != 0).values(acc=_scaled(S.c.acc, factor)))
        db.session.execute(update(W).values(weight=_scaled(W.c.weight, factor)))
        row.epoch, row.epoch_seconds = now, decay.seconds(now)
    return True


def _scaled(column: Any, factor: float) -> Any:
    """column·factor, and 0 where that would underflow (PostgreSQL raises rather than round)."""
    return case((func.abs(column) < TINY, 0.0), else_=column * factor)


def _has_awards() -> ColumnElement[bool]:
    return select(W.c.id).where(W.c.contact_id == S.c.contact_id).exists()


def _advance_all(scored: bool = False) -> None:
    """Offer contacts a move forward (and mark poor fit afresh), a range at a time: those with
    engagement, or (`scored`) everyone with a score row."""
    which = S.c.contact_id.is_not(None) if scored else S.c.acc != 0
    low, top = _bounds(select(S.c.contact_id).where(which))
    for start in range(low, top, CHUNK):
        with write():
            state.alone()
            stages.advance(list(db.session.scalars(select(S.c.contact_id).where(
                which, S.c.contact_id >= start, S.c.contact_id < start + CHUNK)
                .order_by(S.c.contact_id))))


THRESHOLDS = frozenset({"poor_fit_below", "mql_combined", "mql_fit", "sql_combined", "sql_fit"})


def queue_thresholds() -> None:
    """Queue `thresholds_changed` (inside the settings' transaction)."""
    outbox.add("scoring.thresholds")


@job("scoring.thresholds")
def thresholds_changed() -> None:
    """New thresholds apply to everyone at once, not only to contacts whose score changes
    next: poor fit is marked afresh and contacts who now qualify move forward (never back)."""
    _advance_all(scored=True)


# --- shared ---------------------------------------------------------------------------------

def rebuild_score_segments() -> list[int]:
    """Rebuild the segments whose conditions test scores (this plugin's condition kinds);
    returns their ids."""
    found = [s.id for s in segments.all_segments() if rules.mentions_scores(s.definition)]
    for segment_id in found:
        segments.rebuild(segment_id)
    return found


def _claim(rule_id: int, still: Callable[[ScoringRule], bool]) -> ScoringRule | None:
    """The rule, locked against the inactivity tick and its own edits (PostgreSQL), if it is
    still the one this job works for."""
    query = select(ScoringRule).where(ScoringRule.id == rule_id)
    if not is_sqlite():
        query = query.with_for_update()
    rule = db.session.scalars(query).first()
    return rule if rule is not None and still(rule) else None


def _bounds(ids: Any) -> tuple[int, int]:
    """[lowest, highest + 1) of a query's contact ids; (0, 0) when there are none."""
    found = ids.subquery()
    low, high = db.session.execute(select(func.min(found.c[0]), func.max(found.c[0]))).one()
    return (low or 0), ((high + 1) if high is not None else 0)


def _progress(start: int, low: int, top: int) -> float:
    return min(1.0, (start + CHUNK - low) / max(1, top - low))

