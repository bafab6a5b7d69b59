"""Segment conditions on scores: members enter when a score changes, leave as engagement fades
(the segments' clock), a contact without a score counts as 0, and a rebase of the decay's epoch
never changes who matches."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from engine import events
from engine.contacts.models import Contact
from engine.db import db, utcnow, write
from engine.segments import service as segments
from engine.segments.compiler import compile_definition
from engine.testing import deliver_events
from plugins.scoring import decay
from plugins.scoring.conditions import describe_qualified, describe_score
from plugins.scoring.explain import explain
from plugins.scoring.models import ContactScore, ScoreAward
from plugins.scoring.state import exclusive
from plugins.scoring.tests.admin_support import person, rule, score
from tests.admin_helpers import signed_in, token_for


def one(**condition):
    return {"match": "all", "groups": [{"match": "all", "conditions": [condition]}]}


def build(app, work, name, definition) -> None:
    with app.app_context():
        segments.save(name, definition)
    work(app)


def members(app, name) -> set[str]:
    with app.app_context():
        segment = segments.by_name(name)
        found = {c.email for c, _ in segments.members(segment.id, 0, 10_000)}
        db.session.rollback()
        return found


def matching_now(app, definition) -> set[str]:
    with app.app_context():
        compiled = compile_definition(definition)
        found = set(db.session.scalars(select(Contact.email).where(compiled.sql)))
        db.session.rollback()
        return found


def tick(app) -> int:
    with app.app_context():
        return segments.tick()


@pytest.mark.both_backends
def test_engagement_at_least_enters_on_a_score_change_and_leaves_as_it_fades(app, work, clock):
    ann = person(app, "ann@example.com")
    person(app, "bob@example.com")
    pricing = rule(app, "engagement", "Pricing page", 20, event="page_view")
    build(app, work, "Engaged", one(kind="score", which="engagement", op="at_least", value=10))
    assert members(app, "Engaged") == set()
    score(app, ann, awards=((pricing, 20, utcnow()),))
    with app.app_context(), write():
        events.record("score_changed", contact_id=ann, properties={
            "fit": 0, "engagement": 20, "combined": 20, "change": 20, "rules": "Pricing page"})
    deliver_events(app)
    assert members(app, "Engaged") == {"ann@example.com"}
    tick(app)
    clock.advance(days=29)  # 20 halves every 30 days: 10.2, shown as 10
    tick(app)
    assert members(app, "Engaged") == {"ann@example.com"}
    clock.advance(days=2)  # 9.8, shown as 10: still in
    tick(app)
    assert members(app, "Engaged") == {"ann@example.com"}
    clock.advance(days=2)  # 9.4, shown as 9
    assert tick(app) == 1  # only the contact whose engagement crossed 9.5 is re-checked
    definition = one(kind="score", which="engagement", op="at_least", value=10)
    assert members(app, "Engaged") == set() == matching_now(app, definition)


def test_combined_crosses_its_threshold_by_decay_alone(app, work, clock):
    ann = person(app, "ann@example.com", country="GB")  # the fit rule's answer stays true
    fit = rule(app, "fit", "Director", 20, definition=one(kind="field", field="country",
                                                         op="equals", value="GB"))
    pricing = rule(app, "engagement", "Pricing page", 20, event="page_view")
    score(app, ann, fit_rules=(fit,), awards=((pricing, 20, utcnow()),))
    build(app, work, "Hot", one(kind="score", which="combined", op="at_least", value=35))
    build(app, work, "Cooling", one(kind="score", which="combined", op="below", value=35))
    assert (members(app, "Hot"), members(app, "Cooling")) == ({"ann@example.com"}, set())
    tick(app)
    clock.advance(days=31)  # 20 + 9.8: shown as 30
    tick(app)
    assert (members(app, "Hot"), members(app, "Cooling")) == (set(), {"ann@example.com"})


def test_a_contact_without_a_score_counts_as_zero(app):
    ann, bob = person(app, "ann@example.com"), person(app, "bob@example.com")
    person(app, "new@example.com")
    fit = rule(app, "fit", "Director", 20, definition=one(kind="field", field="country",
                                                         op="equals", value="GB"))
    penalty = rule(app, "inactivity", "Gone quiet", -10, days=30)
    score(app, ann, fit_rules=(fit,))
    score(app, bob, awards=((penalty, -10, utcnow()),))
    cases = {("fit", "at_least", 0): {"ann", "bob", "new"},
             ("fit", "at_least", 5): {"ann"},
             ("fit", "below", 5): {"bob", "new"},
             ("engagement", "below", 0): {"bob"},
             ("engagement", "at_least", -5): {"ann", "new"},
             ("combined", "at_least", -10): {"ann", "bob", "new"},
             ("combined", "below", 0.5): {"bob", "new"}}
    for (which, op, value), expected in cases.items():
        found = matching_now(app, one(kind="score", which=which, op=op, value=value))
        assert {email.split("@")[0] for email in found} == expected, (which, op, value)


def test_a_rebase_changes_no_score_and_nobody_s_membership(app):
    ann = person(app, "ann@example.com")
    pricing = rule(app, "engagement", "Pricing page", 10, event="page_view")
    score(app, ann, awards=((pricing, 10, utcnow() - timedelta(days=3)),
                            (pricing, 10, utcnow() - timedelta(days=40))))
    with app.app_context():
        engagement = explain(ann).engagement_exact  # 13.3: 9.33 + 3.97
    definitions = [one(kind="score", which=w, op="at_least", value=v) for w, v in (
        ("engagement", 13), ("engagement", 14), ("combined", 13))]  # shown as 13
    before = [matching_now(app, d) for d in definitions]
    with app.app_context(), write() as session:  # what a rebase does: epoch +50 days
        state = exclusive()
        shift = 50 * decay.DAY
        factor = 2.0 ** (-shift / (state.half_life_days * decay.DAY))
        session.execute(update(ContactScore).values(acc=ContactScore.acc * factor))
        session.execute(update(ScoreAward).values(weight=ScoreAward.weight * factor))
        state.epoch += timedelta(seconds=shift)
        state.epoch_seconds += shift
    with app.app_context():
        assert explain(ann).engagement_exact == pytest.approx(engagement)
    assert [matching_now(app, d) for d in definitions] == before == [
        {"ann@example.com"}, set(), {"ann@example.com"}]


def test_qualified_in_the_last_days_before_after_and_ever(app, work, clock):
    ann, bob = person(app, "ann@example.com"), person(app, "bob@example.com")
    person(app, "new@example.com")
    score(app, ann, qualified_at=utcnow() - timedelta(days=3))
    score(app, bob, qualified_at=utcnow() - timedelta(days=400))
    build(app, work, "New MQLs", one(kind="score_qualified", when="within_last_days", days=7))
    assert members(app, "New MQLs") == {"ann@example.com"}
    day = (utcnow() - timedelta(days=30)).date().isoformat()
    assert matching_now(app, one(kind="score_qualified", when="ever")) == {
        "ann@example.com", "bob@example.com"}
    assert matching_now(app, one(kind="score_qualified", when="before", date=day)) == {
        "bob@example.com"}
    assert matching_now(app, one(kind="score_qualified", when="after", date=day)) == {
        "ann@example.com"}
    tick(app)
    clock.advance(days=5)
    assert tick(app) == 1
    assert members(app, "New MQLs") == set()


def test_the_builder_offers_them_in_words_and_refuses_bad_ones(app):
    assert describe_score({"which": "engagement", "op": "at_least", "value": 50.0}) == \
        "Engagement score is at least 50"
    assert describe_score({"which": "combined", "op": "below", "value": ""}) == \
        "Combined score is below …"
    assert describe_qualified({"when": "within_last_days", "days": 30}) == \
        "Became marketing-qualified in the last 30 days"
    assert describe_qualified({"when": "after", "date": "2025-01-31"}) == \
        "Became marketing-qualified after 2025-01-31"
    editor = signed_in(app, "editor")
    page = editor.post("/admin/segments/new", data={
        "csrf_token": token_for(editor), "name": "Hot", "match": "all", "g-0-match": "all",
        "c-0-0-kind": "score", "c-0-0-which": "engagement", "c-0-0-op": "at_least",
        "c-0-0-value": "", "action": "refresh"}).text
    assert '<option value="at_least" selected>is at least</option>' in page
    assert '<option value="engagement" selected>Engagement</option>' in page
    assert "Type the score to compare with, as a number." in page
    saved = editor.post("/admin/segments/new", data={
        "csrf_token": token_for(editor), "name": "Hot", "match": "all", "g-0-match": "all",
        "c-0-0-kind": "score", "c-0-0-which": "engagement", "c-0-0-op": "at_least",
        "c-0-0-value": "50"})
    assert saved.status_code == 302
    with app.app_context():
        assert segments.by_name("Hot").definition["groups"][0]["conditions"] == [
            {"kind": "score", "which": "engagement", "op": "at_least", "value": 50}]
