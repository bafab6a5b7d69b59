"""A campaign's life: who is in the audience, pausing, resuming, cancelling, people who leave
during the send, A/B decisions, and what bad input is told."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from engine.contacts import service as contacts
from engine.contacts import store
from engine.db import db, utcnow, write
from engine.mail import ledger, suppression
from engine.mail.models import MailSend
from engine.segments import service as segments
from engine.testing import run_jobs
from plugins.newsletters import audience, service
from plugins.newsletters.errors import CampaignError
from plugins.newsletters.models import Campaign, Recipient
from plugins.newsletters.tests.support import (
    campaign,
    people,
    send_all,
    sent_to,
    site,
    statuses,
    template,
    tick,
)


def _campaign(app: Any, campaign_id: int) -> Campaign:
    with app.app_context():
        found = db.session.get(Campaign, campaign_id)
        db.session.expunge(found)
        return found


@pytest.mark.both_backends
def test_the_audience_is_lists_and_segments_minus_exclusions_and_suppressions(
        make_app, smtp_server) -> None:
    app = site(make_app, smtp_server)
    news = people(app, 4)  # p0..p3 on "news"
    vip = people(app, 2, list_slug="vip", prefix="v")  # v0, v1 on "vip"
    people(app, 1, list_slug="staff", prefix="p")  # p0 also on "staff"
    with app.app_context():
        segment = segments.save("VIPs", {"match": "all", "groups": [{"match": "all", "conditions": [
            {"kind": "list", "list": "vip"}]}]})
        segments.build(segment.id, segment.version)
        with write():
            suppression.suppress("p1@example.org", "manual")
            store.unsubscribe(news[2], ["news"])
            withdrawn = db.session.get(contacts.Contact, news[3])
            withdrawn.consent = "withdrawn"
            db.session.execute(update(contacts.Contact).where(
                contacts.Contact.id == vip[1]).values(status="bounced"))
        wanted = audience.clean({"lists": ["news"], "segments": [segment.id],
                                 "exclude_lists": ["staff"]})
        assert audience.count(wanted) == 1  # v0: p0 excluded, p1 suppressed, p2 left,
        # p3 withdrew consent, v1 bounced
    cid = campaign(app, template(app), audience=wanted)
    with app.app_context():
        service.schedule(cid)
    tick(app)  # the send starts: the audience is frozen
    people(app, 1, prefix="late")  # joins after: not half-included
    send_all(app)
    assert sent_to(app) == ["v0@example.org"]
    assert _campaign(app, cid).recipients == 1


def test_pause_holds_the_queued_sends_and_resume_sends_them(make_app, smtp_server) -> None:
    app = site(make_app, smtp_server)
    people(app, 5)
    cid = campaign(app, template(app))
    with app.app_context():
        service.schedule(cid)
    tick(app)  # frozen and released: the sends are queued in the ledger
    with app.app_context():
        service.pause(cid)
    run_jobs(app)
    assert smtp_server.messages == []
    with app.app_context():
        held = db.session.scalars(select(MailSend.status)).all()
        assert held == ["held"] * 5
        with pytest.raises(CampaignError, match="paused; it cannot be paused"):
            service.pause(cid)
        service.resume(cid)
    send_all(app)
    assert len(smtp_server.messages) == 5
    assert _campaign(app, cid).status == "sent"


def test_cancel_stops_everyone_not_yet_sent(make_app, smtp_server) -> None:
    app = site(make_app, smtp_server)
    people(app, 4)
    cid = campaign(app, template(app), timing="at")
    with app.app_context():
        service.schedule(cid, utcnow() - timedelta(seconds=1))
    tick(app)
    with app.app_context():
        service.cancel(cid)
    send_all(app)
    assert smtp_server.messages == []
    assert statuses(app, cid) == {"released": 4}
    with app.app_context():
        assert set(db.session.scalars(select(MailSend.status))) == {"skipped"}
        assert db.session.get(Campaign, cid).status == "cancelled"


def test_people_who_leave_during_the_send_are_not_sent_to(make_app, smtp_server, clock) -> None:
    """A local-time send spreads over the day: someone who unsubscribes before their hour
    comes is skipped; the others are sent at theirs."""
    app = site(make_app, smtp_server)
    ids = people(app, 3)
    with app.app_context(), write():
        for cid_, zone in zip(ids, ("Asia/Tokyo", "Europe/Berlin", "America/New_York"),
                              strict=True):
            contact = db.session.get(contacts.Contact, cid_)
            contact.custom = {"timezone": zone}
    cid = campaign(app, template(app), timing="local", local_time="09:00")
    with app.app_context():
        service.schedule(cid)
    tick(app)
    with app.app_context(), write():
        store.unsubscribe(ids[2], ["news"])
    clock.advance(hours=25)
    send_all(app)
    assert sent_to(app) == ["p0@example.org", "p1@example.org"]
    assert statuses(app, cid) == {"released": 2, "skipped": 1}
    assert _campaign(app, cid).status == "sent"


def _clicks(app: Any, campaign_id: int, variant: str, count: int) -> None:
    """`count` human clicks on `variant`'s sends (the tracking view's mark)."""
    with app.app_context(), write():
        ids = db.session.scalars(select(MailSend.id).join(
            service.Mailing, service.Mailing.id == MailSend.mailing_id).where(
            service.Mailing.key == f"campaign:{campaign_id}:{variant}").limit(count)).all()
        db.session.execute(update(MailSend).where(MailSend.id.in_(ids)).values(
            clicked_at=utcnow(), opened_at=utcnow()))


AB = {"field": "subject", "variants": [{"subject": "Plain subject"},
                                       {"subject": "Exciting subject!"}],
      "share": 40, "metric": "clicks", "wait_hours": 2, "min_sample": 5, "fallback": "a"}


@pytest.mark.both_backends
def test_an_ab_test_sends_the_winner_to_the_rest(make_app, smtp_server, clock) -> None:
    app = site(make_app, smtp_server)
    people(app, 30)
    cid = campaign(app, template(app), ab=AB)
    with app.app_context():
        service.schedule(cid)
    send_all(app)
    assert len(smtp_server.messages) == 12  # 40% of 30, six each
    subjects = sorted({m["Subject"] for m in smtp_server.messages})
    assert subjects == ["Exciting subject!", "Plain subject"]
    assert statuses(app, cid) == {"released": 12, "held": 18}
    _clicks(app, cid, "b", 5)
    _clicks(app, cid, "a", 1)
    clock.advance(hours=1)
    send_all(app)
    assert len(smtp_server.messages) == 12  # the wait is not over
    clock.advance(hours=1, minutes=1)
    send_all(app)
    assert len(smtp_server.messages) == 30
    assert [m["Subject"] for m in smtp_server.messages[12:]] == ["Exciting subject!"] * 18
    result = _campaign(app, cid).ab_result
    assert result["winner"] == "b" and result["variants"]["b"]["p_best"] > 0.9
    assert "Variant B won on click rate: 83.3% (5 of 6)" in result["reason"]
    assert _campaign(app, cid).status == "sent"
    assert len(set(sent_to(app))) == 30


def test_below_the_minimum_sample_the_rest_get_the_fallback(make_app, smtp_server,
                                                            clock) -> None:
    app = site(make_app, smtp_server)
    people(app, 10)
    cid = campaign(app, template(app), ab={**AB, "min_sample": 50, "fallback": "none"})
    with app.app_context():
        service.schedule(cid)
    send_all(app)
    clock.advance(hours=3)
    send_all(app)
    assert len(smtp_server.messages) == 4
    result = _campaign(app, cid).ab_result
    assert result["winner"] == "" and "fewer than 50 messages" in result["reason"]
    assert "Nothing more is sent" in result["reason"]
    assert statuses(app, cid) == {"released": 4, "cancelled": 6}
    assert _campaign(app, cid).status == "sent"


def test_bad_campaigns_are_refused_and_nothing_is_saved(app) -> None:
    with app.app_context():
        tid = None
        for values, message in (
                ({"name": ""}, "Give the campaign a name"),
                ({"name": "x", "audience": {"lists": ["Not A Slug!"]}}, "is not a list name"),
                ({"name": "x", "audience": {"segments": [999]}}, "no segment 999"),
                ({"name": "x", "template_id": 999}, "no such email template"),
                ({"name": "x", "timing": "local", "local_time": "25:00"}, "HH:MM"),
                ({"name": "x", "timing": "best", "ab": AB}, "cannot also send"),
                ({"name": "x", "ab": {**AB, "variants": [{"subject": "one"}]}},
                 "two or three variants"),
                ({"name": "x", "ab": {**AB, "share": 500}}, "between 2 and 100"),
                ({"name": "x", "subject": "Hi {{ contact.first_name }"}, "The subject: "),
                ({"name": "x", "preheader": "Issue {#12}"}, "The preheader: ")):
            with pytest.raises(CampaignError, match=message):
                service.save({"template_id": tid, **values})
        assert db.session.scalar(select(Campaign.id)) is None
        draft = service.save({"name": "Empty"})
        with pytest.raises(CampaignError, match="Choose the email"):
            service.schedule(draft.id)
        assert db.session.get(Campaign, draft.id).status == "draft"
        assert db.session.scalar(select(Recipient.id)) is None


@pytest.mark.parametrize("action", ["pause", "cancel"])
def test_a_batch_running_when_paused_or_cancelled_sends_nothing_more(make_app, smtp_server,
                                                                     action) -> None:
    """A batch holding rows when the editor acts gives them back as held (pause) or skipped
    (cancel), however it stops; the outbox's retry then claims nothing."""
    app = site(make_app, smtp_server)
    people(app, 6)
    cid = campaign(app, template(app))
    with app.app_context():
        service.schedule(cid)
    tick(app)
    with app.app_context():
        ids = sorted(db.session.scalars(select(MailSend.id)))
        in_flight = ledger.claim(ids[:3])
        getattr(service, action)(cid)
        ledger.give_back(in_flight)  # its deadline, a rate limit, a dropped connection
    run_jobs(app)
    assert smtp_server.messages == []
    with app.app_context():
        left = sorted(db.session.scalars(select(MailSend.status)))
    assert left == ["held"] * 6 if action == "pause" else ["skipped"] * 6
    if action == "pause":
        with app.app_context():
            service.resume(cid)
        send_all(app)
        assert len(smtp_server.messages) == 6


def test_one_campaign_that_cannot_start_does_not_hold_up_the_others(make_app,
                                                                   smtp_server) -> None:
    app = site(make_app, smtp_server)
    people(app, 2)
    doomed_template, good_template = template(app, "Doomed"), template(app, "Good")
    doomed = campaign(app, good_template, name="Content test", ab={
        **AB, "field": "content", "variants": [{"template_id": good_template},
                                               {"template_id": doomed_template}]})
    fine = campaign(app, good_template, name="Fine")
    with app.app_context():
        service.schedule(doomed)
        service.schedule(fine)
        with write():  # variant B's template is deleted while it waits to start
            db.session.delete(db.session.get(service.EmailTemplate, doomed_template))
    send_all(app)
    assert len(smtp_server.messages) == 2
    found = _campaign(app, doomed)
    assert found.status == "draft" and "for every variant" in found.error
    assert _campaign(app, fine).status == "sent"


def test_the_email_is_frozen_when_the_send_starts(make_app, smtp_server, clock) -> None:
    """The rest of an A/B test, hours later, get the email as it was at the start, whatever
    the template became meanwhile."""
    app = site(make_app, smtp_server)
    people(app, 10)
    tid = template(app, body="The original text.")
    cid = campaign(app, tid, ab={**AB, "min_sample": 1, "confidence": 50})
    with app.app_context():
        service.schedule(cid)
    send_all(app)
    with app.app_context(), write():
        db.session.get(service.EmailTemplate, tid).body = "Edited for next month."
    clock.advance(hours=3)
    send_all(app)
    assert len(smtp_server.messages) == 10
    bodies = {m.get_body(("plain",)).get_content().splitlines()[0] for m in smtp_server.messages}
    assert bodies == {"The original text."}
