"""Test runs (emails only to the tester, waits of a minute) and dry runs (the path a contact
would take, with nothing written)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.db import db
from plugins.workflows import library, service, testing
from plugins.workflows.definition import WorkflowError
from plugins.workflows.tests.support import (
    enrolment,
    get_workflow,
    path,
    person,
    record,
    site,
    template,
    tick,
    workflow,
)

STEPS = {"start": "hello", "steps": {
    "hello": {"kind": "send_email", "template_id": 0, "next": "two-days"},
    "two-days": {"kind": "wait", "mode": "duration", "minutes": 2 * 24 * 60, "next": "news"},
    "news": {"kind": "send_email", "template_id": 0, "subject": "Our news", "next": ""}}}


def steps_with(hello: int, news: int) -> dict:
    steps = {k: dict(v) for k, v in STEPS["steps"].items()}
    steps["hello"]["template_id"], steps["news"]["template_id"] = hello, news
    return {"start": "hello", "steps": steps}


def test_a_test_run_sends_only_to_the_tester_and_a_two_day_wait_lasts_a_minute(
        make_app, smtp_server, clock, work):
    app = site(make_app, smtp_server)
    hello = template(app, "Hello", subject="Hello {{ contact.first_name }}")
    flow = workflow(app, "Drip", {"kind": "tag_added", "tag": "drip"},
                    steps_with(hello, template(app, "News")))
    ann = person(app, "ann@example.com", first_name="Ann")
    with app.app_context():
        made = testing.start_test(get_workflow(app, flow), ann, " Tester@Example.com ")
        assert (made.test, made.tester) == (True, "tester@example.com")
    work(app)
    assert [(m["To"], m["Subject"]) for m in smtp_server.messages] == [
        ("tester@example.com", "[Test] Hello Ann")]
    assert tick(app, clock, seconds=30) == 0
    assert tick(app, clock, seconds=31) == 1
    work(app)
    assert [(m["To"], m["Subject"]) for m in smtp_server.messages][1:] == [
        ("tester@example.com", "[Test] Our news")]
    assert path(app, flow, ann) == [("hello", "test email sent to tester@example.com"),
                                    ("two-days", "waited"),
                                    ("news", "test email sent to tester@example.com")]
    assert enrolment(app, flow, ann).status == "completed"
    with app.app_context():
        assert service.totals(get_workflow(app, flow))["total"] == 0  # counted nowhere


def test_a_test_run_explains_what_stops_it(make_app, smtp_server):
    app = site(make_app, smtp_server)
    ids = steps_with(template(app, "Hello"), template(app, "News"))
    draft = workflow(app, "Draft", {"kind": "manual"}, ids, activate=False)
    live = workflow(app, "Live", {"kind": "manual"}, ids)
    ann = person(app, "ann@example.com")
    with app.app_context():
        with pytest.raises(WorkflowError, match="never been activated"):
            testing.start_test(get_workflow(app, draft), ann, "tester@example.com")
        with pytest.raises(WorkflowError, match="not an email address"):
            testing.start_test(get_workflow(app, live), ann, "tester")
        with pytest.raises(WorkflowError, match="No such contact"):
            testing.start_test(get_workflow(app, live), 999_999, "tester@example.com")
        service.pause(get_workflow(app, live))
        with pytest.raises(WorkflowError, match="is paused: .* resume it first"):
            testing.start_test(get_workflow(app, live), ann, "tester@example.com")


def test_a_contact_in_a_test_run_can_still_enter_for_real(make_app, smtp_server):
    app = site(make_app, smtp_server)
    ids = steps_with(template(app, "Hello"), template(app, "News"))
    flow = workflow(app, "Drip", {"kind": "tag_added", "tag": "drip"}, ids)
    ann = person(app, "ann@example.com")
    with app.app_context():
        testing.start_test(get_workflow(app, flow), ann, "tester@example.com")
    record(app, "tag_added", ann, tag="drip")
    found = enrolment(app, flow, ann)
    assert (found.test, found.status) == (False, "active")


def _rows(app) -> dict[str, int]:
    with app.app_context():
        return {t.name: db.session.scalar(select(func.count()).select_from(t))
                for t in db.metadata.sorted_tables}


def test_a_dry_run_shows_each_contacts_path_and_writes_nothing(make_app, smtp_server):
    app = site(make_app, smtp_server)
    ann = person(app, "ann@example.com", first_name="Ann")
    bob = person(app, "bob@example.com", first_name="Bob")
    record(app, "page_view", ann, path="/pricing/teams")
    record(app, "page_view", bob, path="/about")
    with app.app_context():
        flow = library.create_from("lead_nurture").id  # a draft: dry runs need no activation
    before = _rows(app)
    with app.app_context():
        made = get_workflow(app, flow)
        ann_path = testing.dry_run(made, ann)
        bob_path = testing.dry_run(made, bob)
    assert _rows(app) == before
    assert [(s.step, s.outcome.split(" (")[0]) for s in ann_path] == [
        ("guide", "would send “The guide you asked for, and how to use it” to ann@example.com"),
        ("wait-3-days", "would wait 3 days"),
        ("case-study", "would send “How a two-person business doubled its enquiries” to "
                       "ann@example.com"),
        ("wait-4-days", "would wait 4 days"),
        ("visited-pricing", "yes"),
        ("to-sales", f"would change the lifecycle stage to {library.SALES_QUALIFIED}"),
        ("tell-sales", "would notify sales@example.com: “Sales-qualified lead: visited the "
                       "pricing page”"),
        ("score", "would add +20 points"),
        ("", "would finish: the end of this path")]
    assert "so far" in ann_path[4].note and ann_path[4].label == "If / else"
    assert [(s.step, s.outcome.split(" (")[0]) for s in bob_path][4:] == [
        ("visited-pricing", "no"),
        ("questions", "would send “Any questions we can answer?” to bob@example.com"),
        ("wait-7-days", "would wait 7 days"),
        ("visited-pricing-later", "no"),
        ("", "would finish: the end of this path")]
    assert bob_path[6].outcome.startswith("would wait 7 days (until ")


def test_a_dry_run_explains_splits_goals_and_timeouts(app):
    hello = template(app, "Hello", subject="Hi")
    flow = workflow(app, "Shapes", {"kind": "manual"}, {"start": "split", "steps": {
        "split": {"kind": "split", "paths": [{"label": "A", "share": 70, "next": "watch"},
                                             {"label": "B", "share": 30, "next": "mail"}]},
        "watch": {"kind": "wait", "mode": "until_condition", "timeout_minutes": 90,
                  "condition": {"match": "all", "conditions": [
                      {"kind": "tag", "tag": "vip", "op": "has"}]},
                  "next": "mail", "timeout_next": "bought"},
        "mail": {"kind": "send_email", "template_id": hello, "next": "bought"},
        "bought": {"kind": "goal", "name": "Bought", "unmet": "wait", "condition": {
            "match": "all", "conditions": [{"kind": "wf_event", "type": "purchase"}]}}}},
        activate=False)
    ann = person(app, "ann@example.com")
    with app.app_context():
        out = testing.dry_run(get_workflow(app, flow), ann)
    assert [(s.step, s.outcome) for s in out][:1] == [
        ("split", "path A (70%) — chosen at random")]
    assert out[0].note == "shown: path A; the others: B (30%)"
    assert out[1].outcome.startswith("would wait up to 1 hour 30 minutes (until ")
    assert out[1].outcome.endswith("then time out")
    assert (out[2].step, out[2].outcome) == ("bought", "would wait here until the goal is met "
                                                       "(up to a year)")
    assert len(out) == 3
