"""A rule's recalculation with set statements equals a plain Python calculation of the same
rule over the same activity, whatever the activity and whatever the rule.

The reference here (`reference_awards`) is written independently of the SQL: each event the
rule's test (`rules.matches`, the one `on_event` uses) accepts, in (occurred_at, id) order,
counted against its calendar period (`decay.bucket`) until the cap is reached.
"""
from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from engine import events
from engine.contacts import store
from engine.db import db, utcnow, write
from engine.events.models import Activity
from plugins.scoring import decay, recalc, rules, service
from plugins.scoring.models import ContactScore, ScoreAward, ScoringRule
from plugins.scoring.state import read


def reference_awards(rule: ScoringRule, activity: list[Activity]) -> dict[int, list[Activity]]:
    """{contact id: the events that earn the rule's points}, computed event by event."""
    counts: Counter[tuple[int, str]] = Counter()
    given: dict[int, list[Activity]] = defaultdict(list)
    for event in sorted(activity, key=lambda a: (a.occurred_at, a.id)):
        if event.contact_id is None or not rules.matches(
                rule, {"type": event.type, "properties": event.properties}):
            continue
        key = (event.contact_id, decay.bucket(event.occurred_at, rule.cap_period)
               if rule.cap_count else "")
        if rule.cap_count and counts[key] >= rule.cap_count:
            continue
        counts[key] += 1
        given[event.contact_id].append(event)
    return given


def reference_engagement(awards: dict[int, list[tuple[int, datetime]]], contact_id: int,
                         now: datetime, half_life_days: float) -> float:
    """Σ points·2^(−(now − t)/h) over a contact's (points, t) awards."""
    return sum(decay.decayed(points, at, now, half_life_days)
               for points, at in awards.get(contact_id, []))


def activity_of(contact_ids: list[int]) -> list[Activity]:
    return list(db.session.scalars(select(Activity).where(Activity.contact_id.in_(contact_ids))))


def stored_awards(rule_id: int, contact_ids: list[int]) -> dict[int, set[int]]:
    found: dict[int, set[int]] = defaultdict(set)
    for contact_id, event_id in db.session.execute(select(
            ScoreAward.contact_id, ScoreAward.event_id).where(
            ScoreAward.rule_id == rule_id, ScoreAward.contact_id.in_(contact_ids))):
        found[contact_id].add(event_id)
    return dict(found)


def engagement_of(contact_ids: list[int], now: datetime | None = None) -> dict[int, float]:
    """What the site shows: each contact's acc turned into engagement at `now`."""
    held = read()
    accs = dict(db.session.execute(select(ContactScore.contact_id, ContactScore.acc).where(
        ContactScore.contact_id.in_(contact_ids))).all())
    return {c: held.value(accs.get(c, 0.0), now or utcnow()) for c in contact_ids}


def run_rule(values: dict[str, Any], rule_id: int | None = None) -> ScoringRule:
    """Save a rule and run its recalculation here (the job the save queued)."""
    rule = service.save_rule(values, rule_id)
    recalc.recalculate(rule.id, rule.version)
    return db.session.get(ScoringRule, rule.id)


def check_rule(rule: ScoringRule, contact_ids: list[int], others: Any = None) -> None:
    """The rule's stored awards are the reference's, and each contact's engagement is the
    closed form over every award the reference gives (this rule's and `others`')."""
    activity = activity_of(contact_ids)
    expected = reference_awards(rule, activity) if rule.active else {}
    assert stored_awards(rule.id, contact_ids) == {
        c: {a.id for a in earning} for c, earning in expected.items()}
    earned: dict[int, list[tuple[int, datetime]]] = defaultdict(list)
    for one in [rule, *(others or [])]:
        for contact_id, earning in (reference_awards(one, activity) if one.active
                                    else {}).items():
            earned[contact_id] += [(one.points, a.occurred_at) for a in earning]
    held = read()
    for now in (utcnow(), utcnow() + timedelta(days=3), utcnow() + timedelta(days=40)):
        for contact_id, value in engagement_of(contact_ids, now).items():
            assert math.isclose(value, reference_engagement(earned, contact_id, now,
                                                            held.half_life_days),
                                rel_tol=1e-9, abs_tol=1e-9), contact_id


# --- the property ----------------------------------------------------------------------------

TYPES = ("page_view", "page_view", "form_submitted", "purchase")  # page views most often
PATHS = ("/pricing", "/Pricing/plans", "/blog", "", None)  # None: no path at all
FILTERS = {
    "page_view": st.sampled_from([
        {"prop": "path", "op": "contains", "value": "pricing"},
        {"prop": "path", "op": "starts_with", "value": "/blog"},
        {"prop": "path", "op": "equals", "value": "/PRICING"},
        {"prop": "path", "op": "not_equals", "value": "/blog"}]),
    "form_submitted": st.sampled_from([
        {"prop": "form", "op": "equals", "value": "demo"},
        {"prop": "form", "op": "contains", "value": "e"}]),
    "purchase": st.sampled_from([
        {"prop": "amount", "op": "gte", "value": 50},
        {"prop": "amount", "op": "lte", "value": 20.5},
        {"prop": "product", "op": "equals", "value": "pro"}]),
}
# Around a week's end and a month's: Sunday 30 June 2024 → Monday 1 July.
START = datetime(2024, 6, 28, tzinfo=UTC)


@st.composite
def an_event(draw: Any) -> tuple[int, str, dict[str, Any], timedelta]:
    kind = draw(st.sampled_from(TYPES))
    props: dict[str, Any] = {}
    if kind == "page_view":
        path = draw(st.sampled_from(PATHS))
        props = {} if path is None else {"path": path}
    elif kind == "form_submitted":
        props = {"form": draw(st.sampled_from(["demo", "news", "ebook"]))}
    elif kind == "purchase":
        props = {"amount": draw(st.sampled_from([10, 20.5, 50, 99.99])),
                 "product": draw(st.sampled_from(["pro", "basic"]))}
    # on the hour, or just before or after it (a day's last microseconds are in the next
    # day if anything rounds them)
    when = timedelta(hours=draw(st.integers(1, 24 * 6)),
                     microseconds=draw(st.sampled_from([0, 1, -1, -400])))
    return draw(st.integers(0, 1)), kind, props, when


@st.composite
def a_rule(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(TYPES[:1] + TYPES))
    points = draw(st.integers(-20, 20).filter(bool))
    filters = draw(st.lists(FILTERS[kind], max_size=2))
    cap = draw(st.sampled_from([None, 1, 2]))
    period = draw(st.sampled_from(["day", "week", "month", "ever"])) if cap else ""
    return {"kind": "engagement", "event": kind, "points": points, "filters": filters,
            "cap_count": cap, "cap_period": period}


_runs = itertools.count()


@pytest.mark.both_backends
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(an_event(), min_size=4, max_size=24), a_rule(), a_rule())
def test_recalculation_equals_the_python_reference(app, clock, happened, first, second):
    run = next(_runs)
    clock.advance(seconds=(START + timedelta(days=8) - clock.now()).total_seconds())
    with app.app_context():
        with write():
            people = [store.save(f"p{n}-run{run}@example.com", {}).id for n in range(3)]
            events.record_many([{"type": kind, "contact_id": people[who], "properties": props,
                                 "occurred_at": START + when}
                                for who, kind, props, when in happened])
        rule = run_rule({**first, "name": f"rule {run}"})
        check_rule(rule, people)
        rule = run_rule({**second, "name": f"rule {run}"}, rule.id)  # an edit
        check_rule(rule, people)
        service.delete_rule(rule.id)
        recalc.forget_rule(rule.id)
        assert db.session.get(ScoringRule, rule.id) is None
        assert set(engagement_of(people).values()) == {0.0}
