"""Scores following the event stream: caps, decay, redelivery, fit, stages, merges."""
from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from engine import events
from engine.contacts import identity, store
from engine.contacts import merge as merging
from engine.contacts import service as contacts
from engine.contacts.models import Contact
from engine.db import db, write
from engine.events.delivery import as_dict
from engine.events.models import Activity
from engine.testing import deliver_events
from plugins.scoring import apply, decay, recalc, service, stages
from plugins.scoring.models import ContactScore, FitHistory, ScoreAward
from plugins.scoring.state import read

DIRECTOR = {"match": "all", "groups": [{"match": "all", "conditions": [
    {"kind": "field", "field": "job_title", "op": "contains", "value": "director"}]}]}


def configure(app, **values) -> None:
    """Save the plugin's settings as an owner would, changing only `values`."""
    with app.app_context():
        manager = app.extensions["magnet.plugins"]
        data = manager.settings_formdata("scoring")
        for key, value in values.items():
            data[key] = str(value)
        form, _ = manager.save_settings("scoring", data)
        assert not form.errors, form.errors


def person(app, email, **values) -> int:
    with app.app_context(), write():
        return store.save(email, contacts.clean_values(values)).id


def page_rule(app, name, points, path, **cap) -> int:
    with app.app_context():
        return service.save_rule({"kind": "engagement", "name": name, "points": points,
                                  "event": "page_view", "cap_count": cap.get("count"),
                                  "cap_period": cap.get("period", ""),
                                  "filters": [{"prop": "path", "op": "equals",
                                               "value": path}]}).id


def fit_rule(app, name="Director", points=15, definition=DIRECTOR) -> int:
    with app.app_context():
        return service.save_rule({"kind": "fit", "name": name, "points": points,
                                  "definition": definition}).id


def view(app, contact_id, path, times=1) -> None:
    with app.app_context(), write():
        events.record_many([{"type": "page_view", "contact_id": contact_id,
                             "properties": {"path": path}} for _ in range(times)])


def scores(app, contact_id) -> tuple[int, float, str]:
    """(fit, engagement now, stage) as stored."""
    with app.app_context():
        row = db.session.get(ContactScore, contact_id)
        stage = db.session.get(Contact, contact_id).lifecycle_stage
        result = (row.fit, read().value(row.acc), stage) if row else (0, 0.0, stage)
        db.session.rollback()
        return result


def count(app, model, **where) -> int:
    with app.app_context():
        query = select(func.count()).select_from(model)
        for key, value in where.items():
            query = query.where(getattr(model, key) == value)
        found = db.session.scalar(query)
        db.session.rollback()
        return found


def timeline(app, contact_id, kind) -> list[dict]:
    with app.app_context():
        found = [row.properties for row in db.session.scalars(select(Activity).where(
            Activity.contact_id == contact_id, Activity.type == kind).order_by(Activity.id))]
        db.session.rollback()
        return found


def monday_morning(clock) -> None:
    """Move the clock to next Monday, 09:00 UTC (a week's cap counts from Monday)."""
    now = clock.now()
    day = now.date() + timedelta(days=7 - now.weekday())
    clock.advance(seconds=(datetime.combine(day, time(9), UTC) - now).total_seconds())


def test_a_capped_rule_gives_at_most_its_cap_a_week(app, clock):
    monday_morning(clock)
    page_rule(app, "Pricing page", 5, "/pricing", count=3, period="week")
    ada = person(app, "ada@example.com")
    view(app, ada, "/pricing", times=5)
    view(app, ada, "/about")  # no rule for it
    deliver_events(app)
    assert count(app, ScoreAward, contact_id=ada) == 3
    assert scores(app, ada)[1] == pytest.approx(15, abs=0.01)
    changes = timeline(app, ada, "score_changed")
    assert len(changes) == 1  # one per contact per batch, not one per award
    assert changes[0]["rules"] == "Pricing page"
    assert changes[0]["engagement"] == pytest.approx(15, abs=0.01)
    clock.advance(days=4)  # Friday: the same week, still capped
    view(app, ada, "/pricing")
    deliver_events(app)
    assert count(app, ScoreAward, contact_id=ada) == 3
    clock.advance(days=3)  # Monday again: a new week
    view(app, ada, "/pricing", times=4)
    deliver_events(app)
    assert count(app, ScoreAward, contact_id=ada) == 6


def test_engagement_decays_exactly_as_the_closed_form(app, clock):
    configure(app, half_life_days=30)
    page_rule(app, "Webinar", 20, "/webinar")
    page_rule(app, "Careers", -5, "/careers")
    ada = person(app, "ada@example.com")
    start = clock.now()
    view(app, ada, "/webinar")
    clock.advance(days=10)
    view(app, ada, "/careers")
    deliver_events(app)
    with app.app_context():
        awards = db.session.execute(select(ScoreAward.points, ScoreAward.occurred_at)).all()
        acc = db.session.get(ContactScore, ada).acc
        state = read()
        for days in (10, 15, 30, 47.5, 365):
            at = start + timedelta(days=days)
            closed = sum(p * 2 ** (-(at - t).total_seconds() / (30 * 86400)) for p, t in awards)
            assert decay.value(acc, at, state.epoch, state.half_life_days) == \
                pytest.approx(closed, rel=1e-9, abs=1e-9)
    at_40 = 20 * 2 ** (-40 / 30) - 5 * 2 ** (-30 / 30)
    clock.advance(days=30)
    assert scores(app, ada)[1] == pytest.approx(at_40, abs=1e-3)


def test_a_batch_delivered_twice_gives_nothing_twice(app):
    page_rule(app, "Pricing page", 5, "/pricing", count=3, period="week")
    page_rule(app, "Docs", 2, "/docs")
    ada = person(app, "ada@example.com")
    deliver_events(app)
    view(app, ada, "/pricing", times=4)
    view(app, ada, "/docs", times=2)
    with app.app_context():
        batch = [as_dict(row) for row in db.session.scalars(
            select(Activity).where(Activity.type == "page_view").order_by(Activity.id))]
        with write():
            apply.apply_events(batch)
            apply.apply_events(batch)  # as a redelivery after a crash would
    assert count(app, ScoreAward) == 5
    assert scores(app, ada)[1] == pytest.approx(19, abs=0.01)
    assert len(timeline(app, ada, "score_changed")) == 1
    deliver_events(app)  # the real delivery of the same events
    assert count(app, ScoreAward) == 5
    assert scores(app, ada)[1] == pytest.approx(19, abs=0.01)


def test_a_fit_rule_follows_field_changes(app):
    fit_rule(app)
    ada = person(app, "ada@example.com", job_title="Head of Sales")
    deliver_events(app)
    assert scores(app, ada)[0] == 0
    person(app, "ada@example.com", job_title="Sales Director")
    deliver_events(app)
    assert scores(app, ada)[0] == 15
    assert timeline(app, ada, "score_changed")[-1]["rules"] == "Director"
    person(app, "ada@example.com", job_title="Intern")
    deliver_events(app)
    assert scores(app, ada)[0] == 0
    with app.app_context():  # the day's trace holds the day's last fit
        assert db.session.execute(select(FitHistory.fit)).scalars().all() == [0]


def test_stages_move_forward_once_and_never_back(app):
    configure(app, mql_combined=50, mql_fit=0, sql_combined=0, poor_fit_below=-20)
    page_rule(app, "Demo", 60, "/demo")
    page_rule(app, "Unsubscribe page", -100, "/unsubscribe")
    ada = person(app, "ada@example.com")
    bea = person(app, "bea@example.com", lifecycle_stage="customer")
    cat = person(app, "cat@example.com", lifecycle_stage="other")
    for someone in (ada, bea, cat):
        view(app, someone, "/demo")
    deliver_events(app)
    assert [scores(app, c)[2] for c in (ada, bea, cat)] == [
        "marketing_qualified", "customer", "other"]
    assert timeline(app, ada, "stage_changed") == [
        {"old": "subscriber", "new": "marketing_qualified"}]
    assert {"field": "lifecycle_stage", "old": "subscriber", "new": "marketing_qualified"} \
        in timeline(app, ada, "field_changed")
    with app.app_context():
        qualified = db.session.get(ContactScore, ada).qualified_at
        assert qualified is not None
    view(app, ada, "/unsubscribe")
    view(app, ada, "/demo")  # down, then up again: no second move
    deliver_events(app)
    assert scores(app, ada)[2] == "marketing_qualified"
    assert len(timeline(app, ada, "stage_changed")) == 1
    with app.app_context():
        assert db.session.get(ContactScore, ada).qualified_at == qualified


def test_a_poor_fit_is_marked_and_never_qualified(app):
    configure(app, mql_combined=50, poor_fit_below=-20)
    fit_rule(app, "Student", -30, {"match": "all", "groups": [{"match": "all", "conditions": [
        {"kind": "field", "field": "job_title", "op": "equals", "value": "student"}]}]})
    page_rule(app, "Demo", 100, "/demo")
    ada = person(app, "ada@example.com", job_title="Student")
    view(app, ada, "/demo")
    deliver_events(app)
    assert scores(app, ada)[0] == -30 and scores(app, ada)[2] == "subscriber"
    with app.app_context():
        assert db.session.get(ContactScore, ada).poor_fit is True


def test_sales_qualified_by_threshold_from_lead(app):
    configure(app, mql_combined=30, sql_combined=80, sql_fit=10)
    fit_rule(app)
    page_rule(app, "Demo", 40, "/demo")
    ada = person(app, "ada@example.com", job_title="Director", lifecycle_stage="lead")
    view(app, ada, "/demo")
    deliver_events(app)
    assert scores(app, ada)[2] == "marketing_qualified"
    view(app, ada, "/demo")  # 15 + 80 ≥ 80, fit 15 ≥ 10
    deliver_events(app)
    assert scores(app, ada)[2] == "sales_qualified"
    assert [e["new"] for e in timeline(app, ada, "stage_changed")] == [
        "marketing_qualified", "sales_qualified"]


def test_advance_moves_thousands_with_set_statements(app):
    """The recalculation's entry point: every qualified contact moved, each with its events."""
    configure(app, mql_combined=10)
    with app.app_context(), write() as session:
        ids = [store.save(f"p{n}@example.com", {}).id for n in range(2000)]
        session.execute(ContactScore.__table__.insert(), [
            {"contact_id": c, "fit": 0, "acc": 0.0 if c % 2 else 1e6, "poor_fit": False,
             "updated_at": datetime.now(UTC)} for c in ids])
    with app.app_context(), write():
        moved = stages.advance(ids)
    assert len(moved) == 1000
    assert count(app, Contact, lifecycle_stage="marketing_qualified") == 1000
    assert count(app, Activity, type="stage_changed") == 1000
    with app.app_context(), write():
        assert stages.advance(ids) == []  # nothing twice


def test_a_merge_keeps_the_points(app):
    fit_rule(app)
    page_rule(app, "Pricing page", 5, "/pricing")
    kept = person(app, "ada@example.com")
    merged = person(app, "ada.work@example.com", job_title="Director")
    view(app, kept, "/pricing", times=2)
    view(app, merged, "/pricing", times=3)
    deliver_events(app)
    assert scores(app, merged)[:2] == (15, pytest.approx(15, abs=0.01))
    with app.app_context():
        record = merging.merge(kept, merged, "admin@example.com")
    deliver_events(app)
    assert scores(app, kept)[:2] == (15, pytest.approx(25, abs=0.01))  # the job title came too
    assert count(app, ScoreAward, contact_id=kept) == 5
    assert count(app, ContactScore, contact_id=merged) == 0
    with app.app_context():
        merging.undo(record.id, "admin@example.com")
    deliver_events(app)
    assert scores(app, kept)[:2] == (0, pytest.approx(10, abs=0.01))
    assert scores(app, merged)[:2] == (15, pytest.approx(15, abs=0.01))


def test_a_browser_s_earlier_visits_score_once_it_is_recognised(app):
    """Pricing pages seen anonymously count when the browser fills in a form: the contact is
    scored as if known all along (within the rule's cap), once."""
    page_rule(app, "Pricing page", 10, "/pricing", count=3, period="week")
    with app.app_context(), write():
        events.record_many([{"type": "page_view", "visitor_id": "b" * 32,
                             "properties": {"path": "/pricing"}} for _ in range(4)])
    deliver_events(app)
    ada = person(app, "ada@example.com")
    with app.app_context(), write():
        assert identity.identify("b" * 32, ada) == 4
    deliver_events(app)
    assert round(scores(app, ada)[1]) == 30
    assert count(app, ScoreAward, contact_id=ada) == 3
    deliver_events(app)  # nothing more comes of it
    assert count(app, ScoreAward, contact_id=ada) == 3


def adjust(app, contact_id, points) -> None:
    with app.app_context(), write():
        events.record("score_adjusted", contact_id=contact_id,
                      properties={"points": points, "reason": "Workflow Nurture"})


def test_score_adjusted_events_give_the_points_they_name_live_and_recalculated(app):
    ann, bob = person(app, "ann@example.com"), person(app, "bob@example.com")
    adjust(app, bob, 7)  # before any rule: counted when the rule's recalculation runs
    deliver_events(app)
    with app.app_context():
        rule = service.save_rule({"kind": "engagement", "name": "Workflow adjustments",
                                  "points": 1, "event": "score_adjusted", "filters": []})
        recalc.recalculate(rule.id, rule.version)
    adjust(app, ann, 20)
    adjust(app, ann, -5)
    adjust(app, ann, 5000)  # at most MAX_POINTS
    deliver_events(app)
    assert round(scores(app, ann)[1]) == 1015
    assert round(scores(app, bob)[1]) == 7
