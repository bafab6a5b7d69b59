"""Engagement as events arrive: the points each rule gives, within its cap, added to the
contact's accumulator in a constant number of statements per delivered batch.

An award is unique per (rule, event), so a batch delivered twice (a worker that died before
its commit) gives nothing twice: the INSERT skips what exists and returns only what it added,
and `acc` grows by exactly the weights returned, with an atomic `acc = acc + :delta` (never a
read-modify-write in Python). A cap counts the contact's awards of the rule in the period
with one query for the whole batch, then hands the remaining places to the batch's events in
the order they happened, as the recalculation's `row_number()` does.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Integer, bindparam, func, or_, select, update

from engine.db import UTCDateTime, db, utcnow
from plugins.scoring import decay
from plugins.scoring.models import ScoringRule
from plugins.scoring.rules import matches, points_for
from plugins.scoring.sets import S, W, among, ensure_scores, insert
from plugins.scoring.state import State


@dataclass(frozen=True)
class Candidate:
    """An event that earns a rule's points unless the rule's cap is reached."""

    event: dict[str, Any]
    rule: ScoringRule
    bucket: str

    @property
    def contact_id(self) -> int:
        return int(self.event["contact_id"])


def candidates(events: list[dict[str, Any]],
               rules_by_event: dict[str, list[ScoringRule]]) -> list[Candidate]:
    """The (event, rule) pairs that match, in the events' order (pure Python: no SQL)."""
    found = []
    for event in events:
        if not event.get("contact_id"):
            continue
        for rule in rules_by_event.get(event["type"], ()):
            if matches(rule, event):
                period = rule.cap_period if rule.cap_count else ""
                found.append(Candidate(event, rule, decay.bucket(event["occurred_at"], period)))
    return found


def _used(capped: list[Candidate]) -> dict[tuple[int, int, str], int]:
    """Awards already given per (contact, rule, bucket) for the capped candidates, one query.
    Awards for this batch's own events are left out of the count: if some exist (a
    recalculation wrote them), they take their place again in the assignment below."""
    if not capped:
        return {}
    contacts = sorted({c.contact_id for c in capped})
    rule_ids = sorted({c.rule.id for c in capped})
    buckets = sorted({c.bucket for c in capped})
    event_ids = sorted({int(c.event["id"]) for c in capped})
    query = (select(W.c.contact_id, W.c.rule_id, W.c.bucket, func.count())
             .where(among(W.c.contact_id, contacts), W.c.rule_id.in_(rule_ids),
                    W.c.bucket.in_(buckets),
                    or_(W.c.event_id.is_(None), ~among(W.c.event_id, event_ids)))
             .group_by(W.c.contact_id, W.c.rule_id, W.c.bucket))
    return {(c, r, b): n for c, r, b, n in db.session.execute(query)}


def award(found: list[Candidate], state: State) -> dict[int, set[str]]:
    """Give the candidates' points within their caps; {contact id: names of the rules that
    gave points} for the awards really added."""
    if not found:
        return {}
    used = _used([c for c in found if c.rule.cap_count])
    rows = []
    for candidate in found:
        rule = candidate.rule
        if rule.cap_count:
            key = (candidate.contact_id, rule.id, candidate.bucket)
            if used.get(key, 0) >= rule.cap_count:
                continue
            used[key] = used.get(key, 0) + 1
        at, points = candidate.event["occurred_at"], points_for(rule, candidate.event)
        rows.append({"contact_id": candidate.contact_id, "rule_id": rule.id,
                     "points": points, "occurred_at": at,
                     "event_id": int(candidate.event["id"]), "bucket": candidate.bucket,
                     "weight": state.weight(points, at)})
    if not rows:
        return {}
    ensure_scores(row["contact_id"] for row in rows)
    statement = insert(W).on_conflict_do_nothing(
        index_elements=["rule_id", "event_id"]).returning(W.c.contact_id, W.c.rule_id,
                                                          W.c.weight)
    added = db.session.execute(statement, rows).all()
    if not added:
        return {}
    names = {c.rule.id: c.rule.name for c in found}
    deltas: dict[int, float] = defaultdict(float)
    gained: dict[int, set[str]] = defaultdict(set)
    for contact_id, rule_id, weight in added:
        deltas[contact_id] += weight
        gained[contact_id].add(names[rule_id])
    add_to_acc(deltas)
    return dict(gained)


def add_to_acc(deltas: dict[int, float]) -> None:
    """acc = acc + delta for each contact, one executemany; the rows exist."""
    if not deltas:
        return
    now = utcnow()
    statement = update(S).where(S.c.contact_id == bindparam("cid", type_=Integer)).values(
        acc=S.c.acc + bindparam("delta", type_=Float),
        updated_at=bindparam("now", type_=UTCDateTime))
    db.session.execute(statement, [{"cid": c, "delta": d, "now": now}
                                   for c, d in sorted(deltas.items())])


def note_activity(events: list[dict[str, Any]], active_types: Iterable[str],
                  create: bool) -> None:
    """last_active_at = the latest activity of each contact (never moved back); rows are
    created first when `create` (an inactivity rule needs every active contact)."""
    kinds = frozenset(active_types)
    latest: dict[int, datetime] = {}
    for event in events:
        contact = event.get("contact_id")
        if contact and event["type"] in kinds:
            at = event["occurred_at"]
            if contact not in latest or latest[contact] < at:
                latest[contact] = at
    if not latest:
        return
    if create:
        ensure_scores(latest)
    at = bindparam("at", type_=UTCDateTime)
    statement = update(S).where(
        S.c.contact_id == bindparam("cid", type_=Integer),
        or_(S.c.last_active_at.is_(None), S.c.last_active_at < at)).values(last_active_at=at)
    db.session.execute(statement, [{"cid": c, "at": t} for c, t in sorted(latest.items())])
