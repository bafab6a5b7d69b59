"""Who comes in, who leaves, goals that pull people forward, waits that end early, the
workflow's sending hours, pausing, and editing a live workflow."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from engine import events
from engine.contacts import store
from engine.contacts.models import Contact
from engine.db import db, utcnow, write
from engine.testing import deliver_events
from plugins.workflows import dates, manual, service
from plugins.workflows.models import DueStep, Enrolment
from plugins.workflows.tests.support import (
    enrolment,
    get_workflow,
    path,
    person,
    record,
    run_due,
    sends,
    site,
    template,
    tick,
    workflow,
)

TAGGED = {"kind": "tag_added", "tag": "trial"}


def two_emails(app, rules=None, trigger=TAGGED, name="Drip"):
    first, second = template(app, "First"), template(app, "Second")
    return workflow(app, name, trigger, {"start": "a", "steps": {
        "a": {"kind": "send_email", "template_id": first, "next": "w"},
        "w": {"kind": "wait", "mode": "duration", "minutes": 60, "next": "b"},
        "b": {"kind": "send_email", "template_id": second}}}, rules)


def tag(app, contact_id, name="trial"):
    with app.app_context(), write():
        store.tag(contact_id, [name])
    deliver_events(app)


def untag(app, contact_id, name="trial"):
    with app.app_context(), write():
        store.untag(contact_id, [name])
    deliver_events(app)


def test_enrol_once_again_after_days_or_every_time(make_app, smtp_server, clock):
    app = site(make_app, smtp_server)
    once = two_emails(app, name="Once")
    again = two_emails(app, {"enrol": "again", "again_days": 7}, name="Again")
    always = two_emails(app, {"enrol": "always"}, name="Always")
    ann = person(app, "ann@example.com")

    def count(flow):
        with app.app_context():
            return len(db.session.scalars(select(Enrolment).where(
                Enrolment.workflow_id == flow)).all())

    tag(app, ann)
    tag(app, ann)  # already tagged: no new event, nobody enrolled twice at once
    assert (count(once), count(again), count(always)) == (1, 1, 1)
    tick(app, clock, hours=2)  # all three finish
    untag(app, ann)
    tag(app, ann)
    assert (count(once), count(again), count(always)) == (1, 1, 2)
    tick(app, clock, days=7)
    untag(app, ann)
    tag(app, ann)
    assert (count(once), count(again), count(always)) == (1, 2, 3)


def test_unsubscribing_or_leaving_the_exit_segment_ends_the_enrolment(make_app, smtp_server,
                                                                      clock):
    app = site(make_app, smtp_server)
    flow = two_emails(app)
    ann, bob = person(app, "ann@example.com"), person(app, "bob@example.com")
    tag(app, ann)
    tag(app, bob)
    record(app, "email_unsubscribed", ann, mailing="workflow:1:a", how="one-click")
    assert enrolment(app, flow, ann).status == "exited"
    assert enrolment(app, flow, ann).exit_reason == "unsubscribed"
    tick(app, clock, hours=2)
    assert [s for s, _ in path(app, flow, bob)] == ["a", "w", "b"]
    assert [s for s, _ in path(app, flow, ann)] == ["a"]
    with app.app_context():
        segment_id = 42
        flow_row = get_workflow(app, flow)
        service.update_settings(flow_row, name=flow_row.name, description="",
                                trigger=flow_row.trigger,
                                rules={"exit_segment_id": segment_id})
    carl = person(app, "carl@example.com")
    tag(app, carl)
    record(app, "segment_left", carl, segment="Trials", segment_id=segment_id)
    assert enrolment(app, flow, carl).exit_reason == "left the segment Trials"


@pytest.mark.both_backends
def test_a_goal_met_anywhere_pulls_the_contact_forward(make_app, smtp_server, clock):
    app = site(make_app, smtp_server)
    mail_id = template(app, "Reminder")
    flow = workflow(app, "Cart", {"kind": "event", "type": "cart_abandoned"}, {
        "start": "w1", "steps": {
            "w1": {"kind": "wait", "mode": "duration", "minutes": 60, "next": "r1"},
            "r1": {"kind": "send_email", "template_id": mail_id, "next": "w2"},
            "w2": {"kind": "wait", "mode": "duration", "minutes": 60 * 23, "next": "r2"},
            "r2": {"kind": "send_email", "template_id": mail_id, "next": "bought"},
            "bought": {"kind": "goal", "name": "Purchased", "unmet": "exit",
                       "condition": {"match": "all", "conditions": [
                           {"kind": "wf_event", "type": "purchase"}]}}}},
        {"enrol": "always"})
    ann, bob = person(app, "ann@example.com"), person(app, "bob@example.com")
    record(app, "cart_abandoned", ann, cart_id="c1")
    record(app, "cart_abandoned", bob, cart_id="c2")
    tick(app, clock, minutes=61)
    record(app, "purchase", ann, order_id="o1")
    found = enrolment(app, flow, ann)
    assert (found.status, found.converted_at is not None) == ("completed", True)
    assert path(app, flow, ann)[-1] == ("bought", "goal reached")
    tick(app, clock, hours=24)
    assert [s.contact_id for s in sends(app)] == [ann, bob, bob]
    assert enrolment(app, flow, bob).exit_reason == "had not reached the goal “Purchased”"
    with app.app_context():
        assert service.step_counts(get_workflow(app, flow))["r1"] == {
            "waiting": 0, "passed": 2, "converted": 1}


@pytest.mark.both_backends
def test_a_wait_on_a_condition_ends_when_it_is_met_or_takes_the_timeout(make_app,
                                                                        smtp_server, clock):
    app = site(make_app, smtp_server)
    flow = workflow(app, "Pricing", TAGGED, {"start": "w", "steps": {
        "w": {"kind": "wait", "mode": "until_condition", "timeout_minutes": 60 * 24 * 3,
              "condition": {"match": "any", "conditions": [
                  {"kind": "wf_page", "path": "/pricing*"}]},
              "next": "hot", "timeout_next": "cold"},
        "hot": {"kind": "tag", "action": "add", "tag": "hot"},
        "cold": {"kind": "tag", "action": "add", "tag": "cold"}}})
    ann, bob = person(app, "ann@example.com"), person(app, "bob@example.com")
    tag(app, ann)
    tag(app, bob)
    record(app, "page_view", ann, path="/pricing/teams")
    assert path(app, flow, ann) == [("w", "condition met"), ("hot", "tagged hot")]
    record(app, "page_view", bob, path="/blog/pricing-tips")
    assert path(app, flow, bob) == []
    tick(app, clock, days=3, minutes=1)
    assert path(app, flow, bob) == [("w", "timed out"), ("cold", "tagged cold")]


def test_emails_wait_for_the_sending_hours_in_the_contacts_zone(make_app, smtp_server, clock):
    app = site(make_app, smtp_server)
    rules = {"quiet_from": 21, "quiet_to": 8, "days": [0, 1, 2, 3, 4]}
    flow = two_emails(app, rules)
    # Friday 22:30 in Berlin (20:30 UTC): nothing until Monday 08:00 Berlin.
    friday = datetime(2030, 6, 7, 20, 30, tzinfo=UTC)
    clock.advance(seconds=(friday - utcnow()).total_seconds())
    ann = person(app, "ann@example.com", country="DE")
    tag(app, ann)
    assert path(app, flow, ann) == []
    with app.app_context():
        due = db.session.scalar(select(DueStep))
        assert due.due_at == datetime(2030, 6, 10, 6, 0, tzinfo=UTC)
        assert due.held == "waits for the sending hours"
    tick(app, clock, days=2, hours=9)  # Monday 07:30 Berlin
    assert path(app, flow, ann) == []
    tick(app, clock, hours=1)
    assert path(app, flow, ann) == [("a", "email queued")]


def test_pausing_holds_everyone_and_resuming_keeps_the_sending_hours(make_app, smtp_server,
                                                                   clock):
    app = site(make_app, smtp_server)
    flow = two_emails(app, {"quiet_from": 20, "quiet_to": 8})
    noon = datetime(2030, 6, 4, 12, 0, tzinfo=UTC)  # UTC contacts (no country)
    clock.advance(seconds=(noon - utcnow()).total_seconds())
    ann = person(app, "ann@example.com")
    tag(app, ann)
    with app.app_context():
        service.pause(get_workflow(app, flow))
    tick(app, clock, hours=10)  # 22:00: the wait came due while paused
    assert [s for s, _ in path(app, flow, ann)] == ["a"]
    tag(app, person(app, "bob@example.com"))  # a paused workflow enrols nobody
    with app.app_context():
        service.resume(get_workflow(app, flow))
    tick(app, clock, minutes=1)  # 22:01: the wait ends, the email waits for 08:00
    assert [s for s, _ in path(app, flow, ann)] == ["a", "w"]
    tick(app, clock, hours=10)
    assert [s for s, _ in path(app, flow, ann)] == ["a", "w", "b"]
    assert len(sends(app)) == 2


def test_publishing_a_version_that_removes_a_step_moves_its_contacts(make_app, smtp_server,
                                                                     clock):
    app = site(make_app, smtp_server)
    flow = two_emails(app)
    ann = person(app, "ann@example.com")
    tag(app, ann)
    with app.app_context():
        found = get_workflow(app, flow)
        draft = {"start": "a", "steps": {**found.draft["steps"]}}
        del draft["steps"]["w"]
        draft["steps"]["a"] = {**draft["steps"]["a"], "next": "b"}
        service.save_draft(found, draft)
        found = get_workflow(app, flow)
        assert service.stranded(found) == {"w": 1}
        try:
            service.publish(found)
            raise AssertionError("publishing should ask where the contacts go")
        except service.WorkflowError as exc:
            assert "step w" in str(exc)
        service.publish(found, {"w": "b"})
    assert enrolment(app, flow, ann).version == 2
    tick(app, clock, minutes=1)
    assert [s for s, _ in path(app, flow, ann)] == ["a", "b"]


@pytest.mark.both_backends
def test_manual_enrolment_of_contacts_respects_the_rules(make_app, smtp_server):
    app = site(make_app, smtp_server)
    flow = two_emails(app, trigger={"kind": "manual"})
    ids = [person(app, f"p{n}@example.com") for n in range(5)]
    with app.app_context():
        done = manual.enrol_contacts(get_workflow(app, flow), ids, "by hand")
        assert (done.enrolled, done.skipped) == (5, 0)
        again = manual.enrol_contacts(get_workflow(app, flow), ids, "by hand")
        assert (again.enrolled, again.skipped) == (0, 5)
        csv_done = manual.enrol_csv(get_workflow(app, flow),
                                    b"email,name\np1@example.com,x\nnobody@example.com,y\n",
                                    "owner@example.com")
        assert csv_done.unknown == ["nobody@example.com"]
    assert run_due(app) == 0
    assert len(sends(app)) == 5


def test_a_birthday_enrols_at_nine_in_the_contacts_zone_every_year(make_app, smtp_server,
                                                                  clock):
    app = site(make_app, smtp_server)
    greeting = template(app, "Happy birthday")
    start = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
    clock.advance(seconds=(start - utcnow()).total_seconds())
    ann = person(app, "ann@example.com", country="US", birthday="1990-03-05")
    bob = person(app, "bob@example.com")
    flow = workflow(app, "Birthday", {"kind": "date_field", "field": "birthday", "hour": 9,
                                      "offset_days": 0, "yearly": True},
                    {"start": "g", "steps": {"g": {"kind": "send_email",
                                                   "template_id": greeting}}},
                    {"enrol": "always"})
    with app.app_context():
        assert dates.rebuild(flow) == 1
    # New York is UTC-5 in early March: 09:00 there is 14:00 UTC on the 5th.
    tick(app, clock, days=4, hours=1, minutes=59)
    assert path(app, flow, ann) == []
    tick(app, clock, minutes=2)
    assert path(app, flow, ann) == [("g", "email queued")]
    with app.app_context(), write():
        contact = db.session.get(Contact, bob)
        contact.custom = {"birthday": "2000-03-06"}
        store.changed(bob, {"birthday": ("", "2000-03-06")})
    deliver_events(app)
    tick(app, clock, days=1)  # bob (UTC): 09:00 on the 6th
    assert path(app, flow, bob) == [("g", "email queued")]
    tick(app, clock, days=365)
    assert len(sends(app)) == 4  # a year on, both again
    assert enrolment(app, flow, ann).entered_at > start + timedelta(days=360)


def test_an_unsubscribe_after_the_trigger_in_one_batch_keeps_the_contact_out(make_app,
                                                                             smtp_server):
    app = site(make_app, smtp_server)
    flow = two_emails(app)
    ann = person(app, "ann@example.com")
    with app.app_context(), write():
        store.tag(ann, ["trial"])
        events.record("email_unsubscribed", contact_id=ann, properties={"how": "one-click"})
    deliver_events(app)
    assert enrolment(app, flow, ann) is None
    assert sends(app) == []
