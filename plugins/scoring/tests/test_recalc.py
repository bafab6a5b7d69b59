"""Recalculating a rule, a deleted rule, a new half-life and the epoch's move: what is stored
afterwards is what a fresh calculation from the activity gives (`test_recalc_properties`'s
reference), and engagement shown at any moment follows the closed form."""
from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from engine import events
from engine.contacts import store
from engine.contacts.models import Contact
from engine.db import db, utcnow, write
from engine.plugins import current
from engine.segments.models import Segment
from engine.testing import run_jobs
from plugins.scoring import decay, recalc, service, stages
from plugins.scoring.models import (
    ContactScore,
    FitHistory,
    FitMatch,
    ScoreAward,
    ScoringRule,
    ScoringState,
)
from plugins.scoring.state import read
from plugins.scoring.tests.test_recalc_properties import (
    activity_of,
    check_rule,
    engagement_of,
    reference_awards,
    run_rule,
)

FRIDAY = datetime(2024, 6, 28, tzinfo=UTC)  # Sunday 30 June is the end of a week
PRICING = {"kind": "engagement", "name": "Pricing page", "event": "page_view", "points": 5,
           "filters": [{"prop": "path", "op": "contains", "value": "pricing"}],
           "cap_count": 2, "cap_period": "week"}
FORMS = {"kind": "engagement", "name": "Forms", "event": "form_submitted", "points": 10}
UNSUBSCRIBED = {"kind": "engagement", "name": "Unsubscribed", "event": "email_unsubscribed",
                "points": -20}


def at(day: int, hour: int = 12, *, micro: int = 0) -> datetime:
    return FRIDAY + timedelta(days=day, hours=hour, microseconds=micro)


@pytest.fixture
def people(app, clock):
    """Ann and Bob, with a week and a half of activity; the clock a few days after it."""
    clock.advance(seconds=(at(8) - clock.now()).total_seconds())
    with app.app_context(), write():
        ann, bob = (store.save(f"{n}@example.com", {}).id for n in ("ann", "bob"))
        seen = [(ann, "/pricing", at(1, 10)), (ann, "/pricing", at(2)),
                (ann, "/pricing", at(2, 23, micro=3_599_999_600)),  # Sunday 23:59:59.9996
                (ann, "/pricing", at(3, 0, micro=100)), (ann, "/pricing/plans", at(3, 9)),
                (ann, "/pricing", at(4)), (ann, "/blog", at(4)), (bob, "/pricing", at(3))]
        events.record_many([{"type": "page_view", "contact_id": who, "occurred_at": when,
                             "properties": {"path": path}} for who, path, when in seen] +
                           [{"type": "form_submitted", "contact_id": bob, "occurred_at": at(5),
                             "properties": {"form": "demo"}}] * 3 +
                           [{"type": "email_unsubscribed", "contact_id": ann,
                             "occurred_at": at(6), "properties": {}}])
    return ann, bob


@pytest.mark.both_backends
def test_an_engagement_rule_equals_a_brute_force_calculation(app, people, clock, monkeypatch):
    ann, bob = people
    offered: list[list[int]] = []
    monkeypatch.setattr(stages, "advance", lambda ids: offered.append(list(ids)) or [])
    with app.app_context():
        with write() as session:
            session.add_all([Segment(name="Engaged", definition={"groups": [{"conditions": [
                {"kind": "score", "score": "engagement", "op": "gte", "value": 10}]}]}),
                Segment(name="UK", definition={"groups": [{"conditions": [
                    {"kind": "field", "field": "country", "op": "equals", "value": "GB"}]}]})])
        pricing = run_rule(PRICING)
        assert pricing.status == "ready" and pricing.progress == 1.0
        # Two a week: Saturday and Sunday noon, then Monday's first two (the Sunday
        # 23:59:59.9996 view is still in the full week, whatever rounds what).
        awarded = db.session.scalars(select(ScoreAward.occurred_at).where(
            ScoreAward.rule_id == pricing.id, ScoreAward.contact_id == ann)
            .order_by(ScoreAward.occurred_at)).all()
        assert awarded == [at(1, 10), at(2), at(3, 0, micro=100), at(3, 9)]
        assert offered == [[ann, bob]]
        rules = [pricing, run_rule(FORMS), run_rule(UNSUBSCRIBED)]
        for rule in rules:
            check_rule(rule, [ann, bob], [r for r in rules if r is not rule])
        clock.advance(days=17)  # later, everything has faded by the same closed form
        check_rule(rules[0], [ann, bob], rules[1:])
        versions = dict(db.session.execute(select(Segment.name, Segment.version)).all())
        assert versions == {"Engaged": 4, "UK": 1}  # rebuilt after each recalculation


@pytest.mark.both_backends
def test_edits_and_a_deletion_give_what_a_fresh_calculation_gives(app, people):
    ann, bob = people
    with app.app_context():
        forms = run_rule(FORMS)
        rule = run_rule(PRICING)
        for change in ({"points": -3}, {"cap_count": 1, "cap_period": "day"},
                       {"filters": [{"prop": "path", "op": "equals", "value": "/BLOG"}]},
                       {"cap_count": None, "cap_period": ""}, {"active": False},
                       {"active": True}):
            rule = run_rule({**PRICING, **change}, rule.id)
            check_rule(rule, [ann, bob], [forms])
        service.delete_rule(rule.id)
        assert db.session.get(ScoringRule, rule.id).status == "deleting"
        recalc.forget_rule(rule.id)
        assert db.session.get(ScoringRule, rule.id) is None
        assert db.session.scalar(select(ScoreAward.id).where(
            ScoreAward.rule_id == rule.id)) is None
        check_rule(forms, [ann, bob])


def where(**test: str) -> dict:
    return {"match": "all", "groups": [{"match": "all", "conditions": [{"kind": "field", **test}]}]}


def fit_of() -> dict[str, tuple[int, bool]]:
    return {email.split("@")[0]: (fit, poor) for email, fit, poor in db.session.execute(
        select(Contact.email, ContactScore.fit, ContactScore.poor_fit)
        .join(ContactScore, ContactScore.contact_id == Contact.id))}


@pytest.mark.both_backends
def test_a_fit_rule_matches_and_sums_like_a_segment(app):
    uk_values = {"kind": "fit", "name": "UK", "points": 15,
                 "definition": where(field="country", op="equals", value="GB")}
    with app.app_context():
        with write():
            for email, values in (("ann", {"country": "GB", "job_title": "Director"}),
                                  ("bob", {"country": "FR", "job_title": "Student"}),
                                  ("cid", {"country": "GB", "job_title": "student"})):
                store.save(f"{email}@example.com", values)
        uk = run_rule(uk_values)
        students = run_rule({"kind": "fit", "name": "Students", "points": -25, "definition":
                             where(field="job_title", op="contains", value="student")})
        assert fit_of() == {"ann": (15, False), "bob": (-25, True), "cid": (-10, False)}
        with write():
            store.save("bob@example.com", {"country": "GB"})
        uk = run_rule({**uk_values, "points": 20}, uk.id)  # re-matched, and worth more
        assert fit_of() == {"ann": (20, False), "bob": (-5, False), "cid": (-5, False)}
        history = db.session.execute(select(FitHistory.day, FitHistory.fit)).all()
        assert sorted(history) == [(utcnow().date(), f) for f in (-5, -5, 20)]
        service.delete_rule(students.id)
        recalc.forget_rule(students.id)
        assert fit_of() == {"ann": (20, False), "bob": (20, False), "cid": (20, False)}
        assert db.session.scalar(select(FitMatch.contact_id).where(
            FitMatch.rule_id == students.id)) is None
        run_rule({**uk_values, "active": False}, uk.id)
        assert fit_of() == {"ann": (0, False), "bob": (0, False), "cid": (0, False)}
        assert db.session.scalar(select(FitMatch.contact_id)) is None


@pytest.mark.both_backends
def test_a_new_half_life_gives_the_closed_form_for_it(app, people):
    ann, bob = people
    with app.app_context():
        rules = [run_rule(PRICING).id, run_rule(FORMS).id, run_rule(UNSUBSCRIBED).id]
        formdata = current().settings_formdata("scoring")
        formdata["half_life_days"] = "7"
        current().save_settings("scoring", formdata)
    run_jobs(app)
    with app.app_context():
        assert read().half_life_days == 7.0
        rules = [db.session.get(ScoringRule, rule_id) for rule_id in rules]
        activity, now = activity_of([ann, bob]), utcnow()
        for contact_id, value in engagement_of([ann, bob], now).items():
            expected = sum(rule.points * 2 ** (-(now - event.occurred_at).total_seconds()
                                                / (7 * 86_400))
                           for rule in rules
                           for event in reference_awards(rule, activity).get(contact_id, []))
            assert math.isclose(value, expected, rel_tol=1e-9)
            assert expected != 0


@pytest.mark.both_backends
def test_rebase_changes_no_value_and_resets_the_weights(app, people, clock):
    ann, bob = people
    with app.app_context():
        rules = [run_rule(PRICING), run_rule(FORMS)]
        with write():
            row = db.session.get(ScoringState, 1)
            row.half_life_days = 1.0  # so that sixteen half-lives pass in a test
        recalc.recalculate(rules[0].id, rules[0].version)
        recalc.recalculate(rules[1].id, rules[1].version)
        assert recalc.rebase() is False  # not yet due
        clock.advance(days=17)
        moment = utcnow()
        before = engagement_of([ann, bob], moment)
        assert recalc.rebase() is True
        assert read().epoch == pytest.approx(decay.seconds(moment), abs=60)
        after = engagement_of([ann, bob], moment)
        assert all(math.isclose(before[c], after[c], rel_tol=1e-12) for c in before)
        assert any(before.values())
        held = read()
        for award in db.session.scalars(select(ScoreAward)):
            assert math.isclose(award.weight, held.weight(award.points, award.occurred_at),
                                rel_tol=1e-9)
        assert recalc.rebase() is False


@pytest.mark.both_backends
def test_a_newer_version_supersedes_a_recalculation_under_way(app, people, monkeypatch):
    ann, bob = people
    monkeypatch.setattr(recalc, "CHUNK", 1)  # one contact per range
    with app.app_context():
        rule = service.save_rule(PRICING)

        def edit_meanwhile(ids: list[int]) -> list[int]:  # inside the first range's write()
            service.save_rule({**PRICING, "points": 7}, rule.id)
            return []

        monkeypatch.setattr(stages, "advance", edit_meanwhile)
        recalc.recalculate(rule.id, 1)
        stopped = db.session.get(ScoringRule, rule.id)
        assert (stopped.version, stopped.status) == (2, "recalculating")
        assert 0 < stopped.progress < 1
        monkeypatch.setattr(stages, "advance", lambda ids: [])
        recalc.recalculate(rule.id, 1)  # a retried old job changes nothing
        assert db.session.get(ScoringRule, rule.id).status == "recalculating"
        service.save_rule({**PRICING, "points": 9}, rule.id)
    run_jobs(app)  # the queued jobs of versions 2 and 3: only the last one works
    with app.app_context():
        rule = db.session.get(ScoringRule, rule.id)
        assert (rule.version, rule.status, rule.progress, rule.points) == (3, "ready", 1.0, 9)
        check_rule(rule, [ann, bob])
