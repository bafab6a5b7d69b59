"""Incremental membership always equals a fresh build, whatever happens in whatever order.

Random sequences of what happens to contacts (field changes, tags, consent, lists and their
confirmation, stages, purchases dated in the past, merges, new contacts) and of time passing
are applied; after each step the events are delivered (and time-bound conditions ticked) as the
workers would, and every segment's stored members must equal its definition evaluated afresh
over all contacts.
"""
from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from engine import events
from engine.contacts import merge, store
from engine.contacts import service as contacts
from engine.contacts.models import Contact, Subscription
from engine.db import db, utcnow, write
from engine.segments import service as segments
from engine.segments.compiler import compile_definition
from engine.segments.models import SegmentMember
from engine.testing import deliver_events

SEGMENTS = {
    "uk": [{"kind": "field", "field": "country", "op": "equals", "value": "GB"}],
    "vip with consent": [{"kind": "tag", "tag": "vip", "op": "has"},
                         {"kind": "consent", "value": "granted"}],
    "repeat buyers": [{"kind": "activity", "event": "purchase", "op": "at_least", "count": 2,
                       "days": 10}],
    "high score": [{"kind": "field", "field": "score", "op": "gt", "value": 5}],
    "bought this week": [{"kind": "activity", "event": "purchase", "op": "at_least", "count": 1,
                          "days": 7}],
}
ANY_OF = {  # matched when any of the conditions is
    "subscribed or lead": [{"kind": "list", "list": "news", "status": "subscribed"},
                           {"kind": "stage", "stages": ["lead", "marketing_qualified"]}],
}

person = st.integers(min_value=0, max_value=2)
ACTIONS = st.one_of(
    st.tuples(st.just("country"), person, st.sampled_from(["GB", "FR", "DE"])),
    st.tuples(st.just("tag"), person),
    st.tuples(st.just("consent"), person),
    st.tuples(st.just("subscribe"), person, st.booleans()),
    st.tuples(st.just("confirm"), person),
    st.tuples(st.just("stage"), person, st.sampled_from(["lead", "customer", "subscriber"])),
    st.tuples(st.just("purchase"), person, st.integers(min_value=0, max_value=14)),
    st.tuples(st.just("score"), person, st.integers(min_value=0, max_value=10)),
    st.tuples(st.just("advance"), st.integers(min_value=1, max_value=6)),
    st.tuples(st.just("merge"), person, person),
)
_runs = itertools.count()


def _apply(action, people: list[int], run: int, clock) -> None:
    kind, *args = action
    if kind == "advance":
        clock.advance(days=args[0])
        segments.tick()
        return
    who = people[args[0]]
    with write():
        email = db.session.get(Contact, who).email
        if kind == "country":
            store.save(email, {"country": args[1]})
        elif kind == "tag":
            store.tag(who, ["vip"])
        elif kind == "consent":
            store.save(email, {}, consent=contacts.consent_values(form="t", ip="", text="yes"))
        elif kind == "subscribe":
            store.subscribe(who, ["news"], double_opt_in=args[1])
        elif kind == "confirm":
            for sub_id in db.session.scalars(select(Subscription.id).where(
                    Subscription.contact_id == who)):
                contacts.confirm_subscription(sub_id)
        elif kind == "stage":
            store.save(email, {"lifecycle_stage": args[1]})
        elif kind == "purchase":
            events.record("purchase", contact_id=who,
                          occurred_at=utcnow() - timedelta(days=args[1]))
        elif kind == "score":
            store.save(email, contacts.clean_values({"score": args[1]}))
    if kind == "merge" and who != people[args[1]]:
        contact, other = db.session.get(Contact, who), db.session.get(Contact, people[args[1]])
        if contact.status == other.status == "active":
            merge.merge(who, other.id, actor="test")


def _settle(app) -> None:
    while deliver_events(app):  # segment_entered/left can change other segments in turn
        pass


def _check(app, people: set[int]) -> None:
    """Each segment's members among these people equal its definition evaluated afresh
    (only this example's people: each example is independent of those before)."""
    with app.app_context():
        for segment in segments.all_segments():
            compiled = compile_definition(segment.definition)
            expected = set(db.session.scalars(select(Contact.id).where(compiled.bulk)))
            stored = set(db.session.scalars(select(SegmentMember.contact_id).where(
                SegmentMember.segment_id == segment.id)))
            assert stored & people == expected & people, segment.name
        db.session.rollback()


@pytest.fixture
def segmented(app, work):
    with app.app_context():
        with write():
            contacts.define_field("score", "Score", "number")
        for name, conditions in SEGMENTS.items():
            segments.save(name, {"match": "all", "groups": [{"match": "all",
                                                             "conditions": conditions}]})
        for name, conditions in ANY_OF.items():
            segments.save(name, {"match": "all", "groups": [{"match": "any",
                                                             "conditions": conditions}]})
        uk = segments.by_name("uk").id
        segments.save("buyers outside the uk", {"match": "all", "groups": [{
            "match": "all", "conditions": [
                {"kind": "segment", "segment": uk, "op": "not_in"},
                {"kind": "activity", "event": "purchase", "op": "at_least", "count": 1}]}]})
    work(app)
    return app


@pytest.mark.slow
@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(ACTIONS, min_size=2, max_size=12))
def test_incremental_membership_equals_a_fresh_build(segmented, clock, actions):
    app = segmented
    run = next(_runs)
    with app.app_context():
        with write():
            people = [store.save(f"p{n}-run{run}@example.com", {}).id for n in range(3)]
    _settle(app)
    for action in actions:
        with app.app_context():
            _apply(action, people, run, clock)
        _settle(app)
        _check(app, set(people))
