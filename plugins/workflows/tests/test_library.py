"""The six ready-made workflows, each started from the library, activated, entered through its
real trigger and run by the clock: who got which email, and which branch each person took."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from engine.contacts import service as contacts
from engine.contacts import store
from engine.contacts.models import Contact
from engine.db import db, utcnow, write
from engine.events.models import Activity
from engine.mail import rendering
from engine.mail.models import EmailTemplate
from engine.testing import deliver_events
from plugins.workflows import library, service
from plugins.workflows.definition import WorkflowError
from plugins.workflows.models import DateTimer, Workflow
from plugins.workflows.tests.support import enrolment, path, person, record, site, tick


def start(app, slug, name=""):
    """Create from the library and activate, as a marketer would; returns (id, draft steps)."""
    with app.app_context():
        made = library.create_from(slug, name=name, by="owner@example.com")
        assert made.status == "draft" and made.version == 0 and made.template == slug
        service.publish(made, by="owner@example.com")
        return made.id, made.draft["steps"]


def inbox(app, work, smtp_server):
    """Send what is queued; {address: [subjects]} of what arrived since the last look."""
    work(app)
    got = {}
    for message in smtp_server.messages:
        got.setdefault(message["To"], []).append(str(message["Subject"]))
    smtp_server.messages.clear()
    return got


def change(app, fn, *args, **kwargs):
    """A change to a contact as the site makes it (events delivered afterwards)."""
    with app.app_context(), write():
        fn(*args, **kwargs)
    deliver_events(app)


def move_to(clock, app, moment: datetime):
    """Move the clock just past `moment` and run what came due."""
    return tick(app, clock, seconds=(moment - clock.now()).total_seconds() + 60)


def opened(app, contact, flow, step, action="email_opened"):
    record(app, action, contact, mailing=f"workflow:{flow}:{step}", machine=False)


def test_every_template_makes_a_valid_draft_once_and_reuses_its_emails(app):
    with app.app_context():
        for slug, template in library.TEMPLATES.items():
            assert template.slug == slug and template.title and template.description
            made = library.create_from(slug)
            assert (made.name, made.status, made.template) == (template.title, "draft", slug)
            used = {s["template_id"] for s in made.draft["steps"].values()
                    if s["kind"] == "send_email"}
            for row in db.session.scalars(select(EmailTemplate).where(
                    EmailTemplate.id.in_(used))):
                assert row.name.startswith(f"{template.title} — ")
                assert rendering.validate(subject=row.subject, preheader=row.preheader,
                                          body=row.body, format=row.format) == []
        emails = db.session.scalar(select(func.count()).select_from(EmailTemplate))
        again = library.create_from("welcome", by="owner@example.com")
        assert again.name == "Welcome series (2)"
        assert library.create_from("welcome", name="  Welcome  series ").name == \
            "Welcome series (3)"
        assert db.session.scalar(select(func.count()).select_from(EmailTemplate)) == emails
        assert "birthday" in contacts.custom_fields()
        with pytest.raises(WorkflowError, match="No workflow template “nope”"):
            library.create_from("nope")


def test_welcome_series_sends_tips_to_the_engaged_and_another_subject_to_the_rest(
        make_app, smtp_server, clock, work):
    app = site(make_app, smtp_server)
    flow, _ = start(app, "welcome")
    ann = person(app, "ann@example.com", first_name="Ann")
    bob = person(app, "bob@example.com")
    change(app, store.subscribe, ann, ["newsletter"], source="form")
    change(app, store.subscribe, bob, ["newsletter"], source="form")
    first = inbox(app, work, smtp_server)
    assert {k: [s.split(" to ")[0] for s in v] for k, v in first.items()} == {
        "ann@example.com": ["Welcome"], "bob@example.com": ["Welcome"]}
    opened(app, ann, flow, "welcome")
    tick(app, clock, days=2, minutes=1)
    assert inbox(app, work, smtp_server) == {
        "ann@example.com": ["Three things you can do this week"],
        "bob@example.com": ["Did our welcome email reach you?"]}
    tick(app, clock, days=5, minutes=1)
    assert inbox(app, work, smtp_server) == {
        "ann@example.com": ["Our most useful articles, in one place"],
        "bob@example.com": ["Our most useful articles, in one place"]}
    assert [s for s, _ in path(app, flow, ann)] == ["welcome", "wait-2-days", "engaged", "tips",
                                                    "wait-5-days", "best-of"]
    assert ("engaged", "no") in path(app, flow, bob) and ("nudge", "email queued") in \
        path(app, flow, bob)
    assert enrolment(app, flow, bob).status == "completed"


def test_webinar_reminds_on_its_dates_then_follows_up_attendees_and_absentees_apart(
        make_app, smtp_server, clock, work):
    app = site(make_app, smtp_server)
    flow, steps = start(app, "webinar")
    ann = person(app, "ann@example.com", first_name="Ann")
    bob = person(app, "bob@example.com", first_name="Bob")
    record(app, "form_submitted", ann, form="webinar")
    record(app, "form_submitted", bob, form="webinar")
    record(app, "form_submitted", person(app, "cy@example.com"), form="newsletter")
    day = date.fromisoformat(steps["until-the-day"]["date"])
    assert day.weekday() == 3 and day - utcnow().date() >= timedelta(days=14)
    sent = inbox(app, work, smtp_server)
    assert sorted(sent) == ["ann@example.com", "bob@example.com"]
    assert sent["ann@example.com"] == [f"You are registered: see you on {day:%A} {day.day} "
                                       f"{day:%B}"]

    def at(days: int, hour: int) -> datetime:  # the test site's zone is UTC
        return datetime.combine(day + timedelta(days=days), time(hour)).replace(
            tzinfo=clock.now().tzinfo)

    move_to(clock, app, at(-1, 9))
    assert inbox(app, work, smtp_server) == {}
    move_to(clock, app, at(-1, 10))
    assert inbox(app, work, smtp_server) == {"ann@example.com": ["Tomorrow: our live webinar"],
                                             "bob@example.com": ["Tomorrow: our live webinar"]}
    move_to(clock, app, at(0, 9))
    assert set(inbox(app, work, smtp_server)["bob@example.com"]) == {
        "Today at 13:00: your link to join"}
    change(app, store.tag, ann, ["attended-webinar"])  # the attendee list, after the webinar
    move_to(clock, app, at(1, 10))
    assert inbox(app, work, smtp_server) == {
        "ann@example.com": ["Thanks for joining: the recording and your next step"],
        "bob@example.com": ["Sorry we missed you — here is the recording"]}
    assert path(app, flow, ann)[-2:] == [("attended", "yes"), ("recording", "email queued")]
    assert path(app, flow, bob)[-2:] == [("attended", "no"), ("missed", "email queued")]


def test_abandoned_cart_stops_at_a_purchase_at_any_point_and_enrols_every_time(
        make_app, smtp_server, clock, work):
    app = site(make_app, smtp_server)
    flow, _ = start(app, "abandoned_cart")
    ann, bob, cy = (person(app, f"{n}@example.com", first_name=n.title())
                    for n in ("ann", "bob", "cy"))
    for who in (ann, bob, cy):
        record(app, "cart_abandoned", who, cart_id=f"c{who}", amount=40)
    assert inbox(app, work, smtp_server) == {}  # the first reminder waits an hour
    record(app, "purchase", cy, order_id="o1", amount=40)  # bought within the hour
    tick(app, clock, hours=1, minutes=1)
    first = "You left something in your cart"
    assert inbox(app, work, smtp_server) == {"ann@example.com": [first],
                                             "bob@example.com": [first]}
    record(app, "purchase", ann, order_id="o2", amount=40)  # after the first reminder
    tick(app, clock, hours=23, minutes=1)
    assert inbox(app, work, smtp_server) == {"bob@example.com": ["Still thinking it over?"]}
    tick(app, clock, days=3, minutes=1)
    assert inbox(app, work, smtp_server) == {}
    converted = enrolment(app, flow, ann)
    assert (converted.status, converted.converted_at is not None) == ("completed", True)
    assert path(app, flow, ann)[-1] == ("purchased", "goal reached")
    assert path(app, flow, cy) == [("purchased", "goal reached")]
    lost = enrolment(app, flow, bob)
    assert (lost.status, lost.converted_at) == ("exited", None)
    assert path(app, flow, bob)[-1] == ("purchased", "goal not met")
    record(app, "cart_abandoned", ann, cart_id="c9", amount=12)  # every time: in again
    assert enrolment(app, flow, ann).status == "active"


def test_birthday_greets_on_the_day_at_nine_and_sets_next_years_timer(
        make_app, smtp_server, clock, work):
    app = site(make_app, smtp_server)
    flow, _ = start(app, "birthday")
    work(app)  # the timers are built once when it is activated (nobody has a birthday yet)
    ann = person(app, "ann@example.com", first_name="Ann")
    bob = person(app, "bob@example.com", first_name="Bob")
    soon = (utcnow() + timedelta(days=3)).date().replace(year=1992)
    change(app, contacts.upsert, "ann@example.com", {"birthday": soon.isoformat()})
    change(app, contacts.upsert, "bob@example.com",
           {"birthday": (soon + timedelta(days=100)).isoformat()})
    tick(app, clock, days=2)
    assert inbox(app, work, smtp_server) == {}
    tick(app, clock, days=2)
    assert inbox(app, work, smtp_server) == {"ann@example.com": ["Happy birthday, Ann!"]}
    assert path(app, flow, ann) == [("greeting", "email queued")]
    assert path(app, flow, bob) == []
    with app.app_context():
        timer = db.session.scalar(select(DateTimer).where(DateTimer.contact_id == ann))
        assert timedelta(days=300) < timer.due_at - utcnow() < timedelta(days=367)


def test_onboarding_skips_the_basics_for_clickers_and_ends_with_feedback_or_help(
        make_app, smtp_server, clock, work):
    app = site(make_app, smtp_server)
    flow, _ = start(app, "onboarding")
    ann = person(app, "ann@example.com", first_name="Ann")
    bob = person(app, "bob@example.com", first_name="Bob")
    change(app, contacts.upsert, "ann@example.com", {"lifecycle_stage": "customer"})
    change(app, contacts.upsert, "bob@example.com", {"lifecycle_stage": "customer"})
    assert inbox(app, work, smtp_server) == {"ann@example.com": ["Welcome aboard — start here"],
                                             "bob@example.com": ["Welcome aboard — start here"]}
    tick(app, clock, days=2, minutes=1)
    opened(app, ann, flow, "first-win", "email_clicked")
    received = {"ann@example.com": [], "bob@example.com": []}
    for days in (2, 2, 3, 2):
        tick(app, clock, days=days, minutes=1)
        for who, subjects in inbox(app, work, smtp_server).items():
            received[who] += subjects
    assert received == {
        "ann@example.com": ["Your first win in 10 minutes", "Three tips from customers like you",
                            "How is it going so far?"],
        "bob@example.com": ["Your first win in 10 minutes", "The basics, in five minutes",
                            "Three tips from customers like you",
                            "Need a hand getting started?"]}
    assert ("clicked-first-win", "yes") in path(app, flow, ann)
    assert ("clicked-first-win", "no") in path(app, flow, bob)


def test_lead_nurture_hands_pricing_visitors_to_sales_and_keeps_nurturing_the_others(
        make_app, smtp_server, clock, work):
    app = site(make_app, smtp_server)
    flow, steps = start(app, "lead_nurture")
    assert steps["tell-sales"]["to"] == "sales@example.com"  # no site address set
    ann = person(app, "ann@example.com", first_name="Ann")
    bob = person(app, "bob@example.com", first_name="Bob")
    record(app, "form_submitted", ann, form="ebook")
    record(app, "form_submitted", bob, form="webinar")
    assert inbox(app, work, smtp_server) == {
        "ann@example.com": ["The guide you asked for, and how to use it"],
        "bob@example.com": ["The guide you asked for, and how to use it"]}
    tick(app, clock, days=3, minutes=1)
    study = ["How a two-person business doubled its enquiries"]
    assert inbox(app, work, smtp_server) == {"ann@example.com": study, "bob@example.com": study}
    record(app, "page_view", ann, path="/pricing")
    record(app, "page_view", bob, path="/about")
    tick(app, clock, days=4, minutes=1)
    assert inbox(app, work, smtp_server) == {
        "sales@example.com": ["Sales-qualified lead: visited the pricing page — "
                              "ann@example.com"],
        "bob@example.com": ["Any questions we can answer?"]}
    with app.app_context():
        points = db.session.scalars(select(Activity.properties).where(
            Activity.contact_id == ann, Activity.type == "score_adjusted")).all()
        assert [p["points"] for p in points] == [20]
    assert [s for s, _ in path(app, flow, ann)][-4:] == ["visited-pricing", "to-sales",
                                                         "tell-sales", "score"]
    assert [s for s, _ in path(app, flow, bob)][-2:] == ["visited-pricing", "questions"]
    tick(app, clock, days=7, minutes=1)
    assert inbox(app, work, smtp_server) == {}
    assert path(app, flow, bob)[-1] == ("visited-pricing-later", "no")
    assert enrolment(app, flow, bob).status == "completed"
    with app.app_context():
        assert db.session.scalar(select(Workflow.template).where(Workflow.id == flow)) == \
            "lead_nurture"


def test_a_set_stage_step_makes_a_lead_sales_qualified(make_app, smtp_server):
    app = site(make_app, smtp_server)
    ann = person(app, "ann@example.com")
    with app.app_context():
        made = service.create("Qualify", trigger={"kind": "tag_added", "tag": "hot"},
                              steps={"start": "s", "steps": {
                                  "s": {"kind": "set_stage", "stage": "sales_qualified"}}})
        service.publish(made)
    change(app, store.tag, ann, ["hot"])
    with app.app_context():
        assert db.session.get(Contact, ann).lifecycle_stage == "sales_qualified"
