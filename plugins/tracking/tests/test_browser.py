"""A real visitor in Chromium: anonymous reading, a CTA click, a form, and the joined timeline."""
from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import select

from engine.contacts import activity
from engine.contacts.models import Contact
from engine.contacts.timezones import BROWSER_FIELD
from engine.db import db
from plugins.tracking.tests.helpers import configure, drain, signed_in


@pytest.fixture
def app(make_app):
    """The demo site, with the form's anti-spam delay off and automated browsers counted (the
    test's Chromium is headless and says so; bot filtering has tests of its own)."""
    from engine.content.sync import sync
    site = make_app(FORM_MIN_FILL_SECONDS=0)
    with site.app_context():
        report = sync(site.config["CONTENT_PATH"])
        assert not report.errors, report.errors
    configure(site, filter_bots=False)
    return site


BEHAVIOUR = ("page_view", "click", "download", "form_view", "form_submitted")


def timeline_of(app, email, expected, timeout=10.0):
    """What the contact did on the site (their timeline, oldest first, without the changes made
    to their record), once `expected` such events are stored."""
    deadline = time.monotonic() + timeout
    while True:
        drain(app)
        with app.app_context():
            contact = db.session.scalar(select(Contact).where(Contact.email == email))
            rows = [r for r in reversed(activity.timeline(contact.id)) if r.type in BEHAVIOUR] \
                if contact else []
            db.session.expunge_all()
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


@pytest.mark.browser
@pytest.mark.slow
def test_anonymous_visit_then_form_joins_the_whole_journey(app, live_server, page, work):
    app.config["SITE_URL"] = live_server  # the beacon counts the site's own host only
    zone = page.context.new_cdp_session(page)  # a visitor far from the machine running this
    zone.send("Emulation.setTimezoneOverride", {"timezoneId": "America/Sao_Paulo"})
    page.goto(f"{live_server}/about")
    page.goto(f"{live_server}/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=june")
    with page.expect_response(lambda r: r.url.endswith("/t/event")):  # its page view is in,
        page.goto(f"{live_server}/")  # before the click (each beacon is stamped as it arrives)
    page.get_by_role("link", name="Get the free e-book").first.click()
    form = page.locator("form[data-magnet-form=ebook]")
    form.get_by_label("Work email").fill("grace@example.com")
    form.get_by_label("First name").fill("Grace")
    form.locator("input[name=consent]").check()
    with page.expect_response(lambda r: r.url.endswith("/forms/ebook")
                              and r.request.method == "POST") as submitted:
        form.locator("[type=submit]").click()
    assert submitted.value.json()["ok"] is True

    rows = timeline_of(app, "grace@example.com", expected=6)
    journey = [(r.type, r.url.replace(live_server, "").split("#")[0]) for r in rows]
    assert journey[:2] == [("page_view", "/about"),
                           ("page_view", "/pricing?utm_source=newsletter&utm_medium=email"
                                         "&utm_campaign=june")]
    assert rows[1].properties["utm"]["utm_campaign"] == "june"
    assert sorted(journey[2:]) == [("click", "/"), ("form_submitted", "/"), ("form_view", "/"),
                                   ("page_view", "/")]
    assert journey.index(("page_view", "/")) < journey.index(("click", "/"))
    assert journey[-1][0] == "form_submitted"
    click = next(r for r in rows if r.type == "click")
    assert click.properties["label"] == "Get the free e-book"
    assert next(r for r in rows if r.type == "form_view").properties["form"] == "ebook"
    assert len({r.visitor_id for r in rows}) == 1

    admin = signed_in(app, "viewer")
    page_html = admin.get(f"/admin/contacts/{rows[0].contact_id}").get_data(as_text=True)
    shown = [kind for kind in reversed(re.findall(r'<li data-type="([a-z_]+)"', page_html))
             if kind in BEHAVIOUR]  # the page lists the newest first
    assert shown == [kind for kind, _ in journey]
    assert f"Viewed <a href=\"{live_server}/about\"" in page_html

    work(app)  # the submission's follow-ups, among them on_form_submitted: first and last touch
    with app.app_context():
        found = db.session.get(Contact, rows[0].contact_id)
        touches = {"first_touch": found.first_touch, "last_touch": found.last_touch}
    assert touches["first_touch"]["landing_page"] == f"{live_server}/about"
    assert touches["first_touch"]["source"] == "(direct)"
    assert (touches["last_touch"]["source"], touches["last_touch"]["medium"],
            touches["last_touch"]["campaign"]) == ("newsletter", "email", "june")
    with app.app_context():  # where their browser is: for sending at their local time
        contact = db.session.get(Contact, rows[0].contact_id)
        assert contact.custom[BROWSER_FIELD] == "America/Sao_Paulo"
