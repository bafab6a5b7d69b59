"""Admin → Campaigns through its pages, as an editor would use them: a campaign written with an
A/B test and a time, saved unchanged without a change, bad input refused with nothing stored,
the live count, the send page repeating what goes out, sending (the audience frozen by the
tick), pause, resume, cancel, duplicate, deleting a campaign that never started, a campaign
from a blog post, the preview and "send a test to me", and what a viewer may do."""
from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from engine.audit import AuditEntry
from engine.content.service import set_site_settings
from engine.db import db, write
from engine.mail.models import EmailTemplate, MailMessage
from engine.segments import service as segments
from plugins.newsletters.models import Campaign
from plugins.newsletters.tests.support import people, site, statuses, template, tick
from tests.admin_helpers import form_as_shown, signed_in, token_for
from tests.content_helpers import post

COLUMNS = [c.name for c in Campaign.__table__.columns]


def text_of(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def stored(app, campaign_id: int) -> dict:
    with app.app_context():
        row = db.session.get(Campaign, campaign_id)
        return {name: getattr(row, name) for name in COLUMNS}


def actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEntry.action).where(
            AuditEntry.action.like("newsletters.%")).order_by(AuditEntry.id)))


def campaigns(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Campaign))


def segment(app, name: str = "French speakers", country: str = "FR") -> int:
    with app.app_context():
        return segments.save(name, {"match": "all", "groups": [{"match": "all", "conditions": [
            {"kind": "field", "field": "country", "op": "equals", "value": country}]}]}).id


@pytest.fixture
def shop(make_app, smtp_server, work):
    """A site in Paris time with 3 on "news", 2 on "staff" (one of them on "news" too), a
    segment of the French, a marketing template and a transactional one."""
    app = site(make_app, smtp_server)
    with app.app_context():
        set_site_settings({"timezone": "Europe/Paris"})
    people(app, 3)
    people(app, 1, list_slug="staff", prefix="p")  # p0 again: on news and staff
    people(app, 2, list_slug="other", prefix="fr", country="FR")
    app.french = segment(app)
    work(app)  # the segment's build
    app.news = template(app)
    with app.app_context(), write():
        receipt = EmailTemplate(name="Receipt", subject="Your receipt", body="Thanks",
                                kind="transactional")
        db.session.add(receipt)
        db.session.flush()
        app.receipt = receipt.id
    return app


def fields(app, **changes) -> MultiDict:
    values = {"name": "Spring sale", "template_id": str(app.news), "subject": "Spring is here",
              "preheader": "20% off this week", "from_name": "Ada at Acme",
              "lists": "news", "exclude_lists": "staff", "segments": str(app.french),
              "timing": "at", "send_at": "2030-03-31T09:30", "local_time": "09:00",
              "window_hours": "24", "ab_field": "subject", "ab_a_subject": "Spring is here",
              "ab_b_subject": "20% off, this week only", "ab_share": "50",
              "ab_metric": "clicks", "ab_days": "7", "ab_wait_hours": "2",
              "ab_min_sample": "1", "ab_fallback": "a", "conversion_days": "7",
              "public": "y", "utm_campaign": "spring", "action": "save", **changes}
    return MultiDict([(k, v) for k, v in values.items() if v is not None])


def create(client, app, **changes):
    data = fields(app, **changes)
    data["csrf_token"] = token_for(client, "/admin/campaigns/new")
    return client.post("/admin/campaigns/new", data=data)


def test_an_editor_writes_a_campaign_and_saving_it_unchanged_changes_nothing(shop):
    editor = signed_in(shop, "editor")
    made = create(editor, shop)
    assert made.status_code == 302, text_of(made.text)[-600:]
    cid = int(made.headers["Location"].rstrip("/").split("/")[-1])
    saved = stored(shop, cid)
    assert saved["audience"] == {"lists": ["news"], "segments": [shop.french],
                                 "exclude_lists": ["staff"], "exclude_segments": []}
    # 09:30 on the site's clock (Paris, summer time on 31 March 2030) is 07:30 UTC.
    assert saved["send_at"] == datetime(2030, 3, 31, 7, 30, tzinfo=UTC)
    assert saved["ab"]["variants"] == [{"key": "a", "subject": "Spring is here"},
                                       {"key": "b", "subject": "20% off, this week only"}]
    assert (saved["ab"]["share"], saved["ab"]["min_sample"], saved["public"]) == (50, 1, True)
    assert saved["status"] == "draft" and saved["updated_by"] == "editor@example.com"

    page = editor.get(f"/admin/campaigns/{cid}").text
    assert "Europe/Paris time" in page and 'value="2030-03-31T09:30"' in page
    assert "<strong>4</strong> people would get it now" in page  # p1, p2, fr0, fr1
    shown = form_as_shown(page, f"/admin/campaigns/{cid}")
    again = editor.post(f"/admin/campaigns/{cid}", data=MultiDict(shown))
    assert again.status_code == 302
    assert "Nothing changed." in editor.get(again.headers["Location"]).text
    assert stored(shop, cid) == saved
    assert actions(shop) == ["newsletters.create"]

    changed = [(k, "Spring is here!" if k == "ab_a_subject" else v) for k, v in shown]
    assert editor.post(f"/admin/campaigns/{cid}", data=MultiDict(changed)).status_code == 302
    assert stored(shop, cid)["ab"]["variants"][0]["subject"] == "Spring is here!"
    assert actions(shop) == ["newsletters.create", "newsletters.update"]


@pytest.mark.parametrize("changes, message", [
    ({"name": ""}, "Give the campaign a name."),
    ({"template_id": "receipt"}, "is a transactional template"),
    ({"timing": "local"}, "cannot also send at each recipient"),
    ({"ab_b_subject": ""}, "Variant B needs a subject."),
    ({"segments": "999"}, "There is no segment 999."),
    ({"send_at": "next tuesday"}, "Give the time as a date and a time of day"),
    ({"lists": "News Letter"}, "is not a list name"),
    ({"ab_share": "lots"}, "The test share (%) must be a whole number."),
    ({"exclude_lists": "news"}, "“news” is both in the audience and left out: it would reach "
                                "nobody from it."),
])
def test_bad_input_is_refused_on_the_form_and_nothing_is_saved(shop, changes, message):
    editor = signed_in(shop, "editor")
    if changes.get("template_id") == "receipt":
        changes["template_id"] = str(shop.receipt)
    refused = create(editor, shop, **changes)
    assert refused.status_code == 400
    assert message in text_of(refused.text)
    assert 'value="20% off, this week only"' in refused.text or "ab_b_subject" in changes
    assert campaigns(shop) == 0

    cid = int(create(editor, shop).headers["Location"].rstrip("/").split("/")[-1])
    before = stored(shop, cid)
    data = fields(shop, **changes)
    data["csrf_token"] = token_for(editor, f"/admin/campaigns/{cid}")
    assert editor.post(f"/admin/campaigns/{cid}", data=data).status_code == 400
    assert stored(shop, cid) == before


def test_the_recipient_count_follows_the_form(shop):
    editor = signed_in(shop, "editor")
    token = token_for(editor, "/admin/campaigns/new")

    def count(**audience) -> str:
        data = MultiDict([("csrf_token", token)] + [(k, v) for k, vs in audience.items()
                                                    for v in vs])
        return text_of(editor.post("/admin/campaigns/count", data=data).text)

    assert count(lists=["news"]) == "3 people would get it now"
    assert count(lists=["news"], exclude_lists=["staff"]) == "2 people would get it now"
    assert count(lists=["staff"], segments=[str(shop.french)]) == "3 people would get it now"
    assert count() == "Choose lists or segments: how many people they reach shows here."
    assert count(segments=["999"]) == "There is no segment 999."
    assert count(segments=[str(shop.french)], exclude_segments=[str(shop.french)]).startswith(
        "Segment “French speakers” is both in the audience and left out")


def test_send_now_then_pause_resume_and_cancel(shop, smtp_server):
    editor = signed_in(shop, "editor")
    made = create(editor, shop, timing="now", send_at="", ab_field="", segments=None,
                  exclude_lists=None, action="send")
    assert made.status_code == 302 and made.headers["Location"].endswith("/send")
    cid = campaign_id = int(made.headers["Location"].split("/")[-2])
    confirm = text_of(editor.get(made.headers["Location"]).text)
    assert "3 people would get it now." in confirm
    assert ("Email Monthly news Subject Spring is here From Ada at Acme <hello@acme.example> "
            "Preheader 20% off this week Audience List news When As soon as it is sent "
            "A/B test No A/B test") in confirm
    sent = editor.post(f"/admin/campaigns/{cid}/send",
                       data={"csrf_token": token_for(editor, f"/admin/campaigns/{cid}/send")})
    assert sent.status_code == 302
    starting = editor.get(sent.headers["Location"]).text
    assert "is sending: it starts within seconds" in starting
    assert "Starting: the audience is being counted" in starting  # no editor: it is going
    assert 'name="name"' not in starting
    assert stored(shop, cid)["status"] == "scheduled"
    waiting = editor.get(f"/admin/campaigns/{cid}/progress?was=scheduled")
    assert "HX-Refresh" not in waiting.headers

    tick(shop)  # starts it: the audience is frozen, and released at once
    started = editor.get(f"/admin/campaigns/{cid}/progress?was=scheduled")
    assert started.headers["HX-Refresh"] == "true"  # the whole page follows the new status
    people(shop, 1, prefix="late")  # joins the list after the freeze: not included
    tick(shop)
    assert stored(shop, cid)["recipients"] == 3
    assert statuses(shop, cid) == {"released": 3}
    page = text_of(editor.get(f"/admin/campaigns/{cid}").text)
    assert "0 of 3 sent" in page and "Handed to the mailer 3" in page and "Queued 3" in page
    assert 'name="name"' not in editor.get(f"/admin/campaigns/{cid}").text  # no form now
    card = editor.get(f"/admin/campaigns/{cid}/progress").text  # what the page refreshes
    assert "0 of 3 sent" in text_of(card) and 'hx-trigger="every 5s"' in card

    def act(name: str) -> str:
        token = token_for(editor, f"/admin/campaigns/{campaign_id}")
        done = editor.post(f"/admin/campaigns/{campaign_id}/{name}", data={"csrf_token": token})
        assert done.status_code == 302
        return text_of(editor.get(done.headers["Location"]).text)

    paused = act("pause")
    assert "“Spring sale” paused." in paused and "nobody else gets it until it is resumed" in paused
    assert "Paused 3" in paused  # the queued messages are held
    assert stored(shop, cid)["status"] == "paused"
    assert "is paused; it cannot be paused now" in act("pause")
    assert "resumed" in act("resume")
    assert "Cancel the campaign" in editor.get(f"/admin/campaigns/{cid}/cancel").text
    assert "cancelled: nobody not yet sent to gets it" in act("cancel")
    assert stored(shop, cid)["status"] == "cancelled"
    assert actions(shop) == ["newsletters.create", "newsletters.send", "newsletters.pause",
                             "newsletters.resume", "newsletters.cancel"]
    assert smtp_server.messages == []


def test_the_send_page_repeats_each_variant_the_audience_and_the_split(shop):
    editor = signed_in(shop, "editor")
    cid = int(create(editor, shop, subject="", from_name="", preheader="").headers[
        "Location"].split("/")[-1])
    confirm = text_of(editor.get(f"/admin/campaigns/{cid}/send").text)
    assert ("Email Monthly news Subject Variant A: Spring is here Variant B: 20% off, this "
            "week only From Acme <hello@acme.example> Preheader None Audience List news and "
            "segment “French speakers”, except list staff When At 31 Mar 2030, 09:30 "
            "(Europe/Paris)") in confirm
    assert "The test group: 2 people, drawn at random (1 or so per variant); the other 2 get " \
        "the winner." in confirm
    assert "Send now to 4" in confirm and "Schedule" in confirm


def test_schedule_and_unschedule(shop):
    editor = signed_in(shop, "editor")
    cid = int(create(editor, shop, ab_field="").headers["Location"].split("/")[-1])
    url = f"/admin/campaigns/{cid}/send"
    assert 'value="2030-03-31T09:30"' in editor.get(url).text  # the chosen time, offered
    token = token_for(editor, url)
    past = editor.post(f"/admin/campaigns/{cid}/schedule",
                       data={"csrf_token": token, "send_at": "2001-01-01T09:00"})
    assert "That time has passed" in editor.get(past.headers["Location"]).text
    done = editor.post(f"/admin/campaigns/{cid}/schedule",
                       data={"csrf_token": token, "send_at": "2030-04-01T08:00"})
    assert "scheduled for 1 Apr 2030, 08:00 (Europe/Paris)" in text_of(
        editor.get(done.headers["Location"]).text)
    assert stored(shop, cid)["send_at"] == datetime(2030, 4, 1, 6, 0, tzinfo=UTC)
    tick(shop)
    assert stored(shop, cid)["status"] == "scheduled"  # not yet
    page = editor.get(f"/admin/campaigns/{cid}").text
    assert "Unschedule" in page and 'name="name"' in page  # still editable
    unscheduled = editor.post(f"/admin/campaigns/{cid}/unschedule",
                              data={"csrf_token": token})
    assert "is a draft again" in editor.get(unscheduled.headers["Location"]).text
    assert stored(shop, cid)["status"] == "draft"


def test_a_viewer_sees_campaigns_but_changes_nothing(shop):
    editor = signed_in(shop, "editor")
    cid = int(create(editor, shop).headers["Location"].split("/")[-1])
    before = stored(shop, cid)
    viewer = signed_in(shop, "viewer")
    assert "Spring sale" in viewer.get("/admin/campaigns/").text
    page = viewer.get(f"/admin/campaigns/{cid}").text
    assert '<fieldset class="bare" disabled>' in page and "Save draft</button>" not in page
    assert "Send a test to me" not in page and "New campaign" not in viewer.get(
        "/admin/campaigns/").text
    token = token_for(viewer, f"/admin/campaigns/{cid}")
    data = fields(shop, name="Mine now")
    data["csrf_token"] = token
    assert viewer.post(f"/admin/campaigns/{cid}", data=data).status_code == 403
    for name in ("send", "schedule", "pause", "cancel", "duplicate", "test"):
        assert viewer.post(f"/admin/campaigns/{cid}/{name}",
                           data={"csrf_token": token}).status_code == 403, name
    assert viewer.get("/admin/campaigns/new").status_code == 403
    assert viewer.post("/admin/campaigns/count", data={"csrf_token": token}).status_code == 403
    assert stored(shop, cid) == before and campaigns(shop) == 1
    # Without the CSRF token, even an editor changes nothing.
    assert editor.post(f"/admin/campaigns/{cid}/send").status_code == 400


def test_duplicate_makes_a_new_draft_of_the_same_campaign(shop):
    editor = signed_in(shop, "editor")
    cid = int(create(editor, shop).headers["Location"].split("/")[-1])
    done = editor.post(f"/admin/campaigns/{cid}/duplicate",
                       data={"csrf_token": token_for(editor, f"/admin/campaigns/{cid}")})
    copy = int(done.headers["Location"].split("/")[-1])
    assert copy != cid
    assert "is a new draft, a copy of" in editor.get(done.headers["Location"]).text
    original, duplicate = stored(shop, cid), stored(shop, copy)
    assert duplicate["name"] == "Spring sale (copy)" and duplicate["status"] == "draft"
    for name in ("template_id", "subject", "audience", "ab", "public", "utm_campaign"):
        assert duplicate[name] == original[name], name
    listing = text_of(editor.get("/admin/campaigns/").text)
    assert listing.index("Spring sale (copy) draft") < listing.index("Spring sale draft")


def test_preview_as_a_contact_each_variant_and_a_test_to_me(shop):
    editor = signed_in(shop, "editor")
    cid = int(create(editor, shop).headers["Location"].split("/")[-1])
    page = editor.get(f"/admin/campaigns/{cid}?contact=p1@example.org&variant=b").text
    assert "Variant B, as P1 <p1@example.org>" in text_of(page)
    assert '<dd class="preview-subject">20% off, this week only</dd>' in page
    assert "Hello P1!" in page and 'sandbox="allow-popups' in page
    assert "Ada at Acme &lt;hello@acme.example&gt;" in page
    sample = editor.get(f"/admin/campaigns/{cid}").text
    assert "as a sample contact" in text_of(sample) and "Hello Alex!" in sample

    token = token_for(editor, f"/admin/campaigns/{cid}")
    for _ in range(10):
        done = editor.post(f"/admin/campaigns/{cid}/test",
                           data={"csrf_token": token, "contact": "p1@example.org",
                                 "variant": "b"})
        assert done.status_code == 302
    assert "is on its way to editor@example.com" in editor.get(done.headers["Location"]).text
    refused = editor.post(f"/admin/campaigns/{cid}/test", data={"csrf_token": token})
    assert "at most 10 tests every 10 minutes" in editor.get(refused.headers["Location"]).text
    with shop.app_context():
        subjects = list(db.session.scalars(select(MailMessage.subject).where(
            MailMessage.to == "editor@example.com")))
    assert subjects == ["[Test] 20% off, this week only"] * 10


def test_a_campaign_from_a_blog_post_is_made_once(shop):
    item = post(shop, "Ten spring recipes", body="Asparagus, **mostly**.",
                summary="What to cook now")
    editor = signed_in(shop, "editor")
    page = editor.get("/admin/campaigns/from-post").text
    assert "Ten spring recipes" in page
    token = token_for(editor, "/admin/campaigns/from-post")
    data = {"csrf_token": token, "post": str(item.id), "lists": "news", "content": "excerpt"}
    made = editor.post("/admin/campaigns/from-post", data=data)
    assert made.status_code == 302
    cid = int(made.headers["Location"].split("/")[-1])
    draft = editor.get(made.headers["Location"]).text
    assert "Post: Ten spring recipes" in draft and "What to cook now" in draft
    assert stored(shop, cid)["audience"]["lists"] == ["news"]
    assert f'href="/admin/campaigns/{cid}">its campaign' in editor.get(
        "/admin/campaigns/from-post").text
    again = editor.post("/admin/campaigns/from-post", data=data)
    assert again.headers["Location"].endswith(f"/admin/campaigns/{cid}")
    assert campaigns(shop) == 1

    # Deleted, the draft frees its post: it can be made into a campaign again.
    asked = text_of(editor.get(f"/admin/campaigns/{cid}/delete").text)
    assert "Its blog post can then be made into a campaign again." in asked
    editor.post(f"/admin/campaigns/{cid}/delete", data={"csrf_token": token})
    assert campaigns(shop) == 0
    remade = editor.post("/admin/campaigns/from-post", data=data)
    assert "is a new draft" in editor.get(remade.headers["Location"]).text
    assert stored(shop, int(remade.headers["Location"].split("/")[-1]))["post_id"] == item.id


def test_a_campaign_that_never_started_is_deleted_after_asking_and_others_are_not(shop):
    editor = signed_in(shop, "editor")
    cid = int(create(editor, shop, ab_field="").headers["Location"].split("/")[-1])
    assert "Delete this draft…" in editor.get(f"/admin/campaigns/{cid}").text
    asked = text_of(editor.get(f"/admin/campaigns/{cid}/delete").text)
    assert "Delete “Spring sale”? It was never sent to anybody." in asked
    token = token_for(editor, f"/admin/campaigns/{cid}/delete")
    done = editor.post(f"/admin/campaigns/{cid}/delete", data={"csrf_token": token})
    assert done.headers["Location"].endswith("/admin/campaigns/")
    assert "“Spring sale” deleted." in editor.get(done.headers["Location"]).text
    assert campaigns(shop) == 0 and editor.get(f"/admin/campaigns/{cid}").status_code == 404

    # Cancelled before it started: nothing was sent, so it can go too.
    cancelled = int(create(editor, shop, ab_field="").headers["Location"].split("/")[-1])
    editor.post(f"/admin/campaigns/{cancelled}/cancel", data={"csrf_token": token})
    assert "Delete…" in editor.get(f"/admin/campaigns/{cancelled}").text
    editor.post(f"/admin/campaigns/{cancelled}/delete", data={"csrf_token": token})
    assert campaigns(shop) == 0

    # Started: its sends and figures stay.
    sent = int(create(editor, shop, ab_field="", timing="now", send_at="").headers[
        "Location"].split("/")[-1])
    editor.post(f"/admin/campaigns/{sent}/send", data={"csrf_token": token})
    tick(shop)
    assert "Delete" not in editor.get(f"/admin/campaigns/{sent}").text
    refused = editor.post(f"/admin/campaigns/{sent}/delete", data={"csrf_token": token})
    assert "Not deleted: “Spring sale” has started: it cannot be deleted" in text_of(
        editor.get(refused.headers["Location"]).text)
    assert campaigns(shop) == 1 and stored(shop, sent)["status"] == "sending"
    assert actions(shop).count("newsletters.delete") == 2
    viewer = signed_in(shop, "viewer")
    assert viewer.post(f"/admin/campaigns/{sent}/delete",
                       data={"csrf_token": token_for(viewer, "/admin/campaigns/")}
                       ).status_code == 403
