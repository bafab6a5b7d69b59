"""The contact page's timeline with tracking on: page views in words, grouped under the visit
they belong to with its source, and the visit's touch written to the contact's own fields."""
from __future__ import annotations

import re

import pytest

from engine.contacts import identity
from engine.contacts.models import Contact
from engine.db import db, write
from plugins.tracking.tests.helpers import drain, events, send, signed_in

CAMPAIGN = "utm_source=newsletter&utm_medium=email&utm_campaign=spring"


def _visit_from_a_campaign(app, client) -> int:
    """A browser arrives from a campaign link (opened from Google's mail), reads two pages,
    clicks and downloads, then becomes a contact: returns the contact's id."""
    send(client, app, url=f"http://localhost/pricing?{CAMPAIGN}", n="Pricing",
         r="https://www.google.com/")
    send(client, app, url="http://localhost/about", n="About us", r="http://localhost/pricing")
    send(client, app, "click", url="http://localhost/about", h="https://example.org/partner",
         x="Our partner")
    send(client, app, "download", url="http://localhost/about",
         h="http://localhost/files/price-list.pdf")
    drain(app)
    visitor_id = events(app)[0].visitor_id
    with app.app_context():
        with write() as session:
            contact = Contact(email="ada@example.com", custom={}, consent_proof={},
                              first_touch={}, last_touch={})
            session.add(contact)
            session.flush()
            identity.identify(visitor_id, contact.id)
        from plugins.tracking import on_form_submitted
        on_form_submitted(submission=None, contact=contact)
        return contact.id


@pytest.mark.both_backends
def test_hook_filter_timeline_visits(app, client):
    """Page views in words under "Visit from Google · newsletter / email / spring · 2 pages";
    the visit became the contact's original source, in the core's fields."""
    contact_id = _visit_from_a_campaign(app, client)
    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        assert (contact.first_touch["channel"], contact.first_touch["campaign"]) == (
            "Email", "spring")
        assert contact.last_touch == contact.first_touch  # one visit: first and last
    page = signed_in(app, "viewer").get(f"/admin/contacts/{contact_id}").get_data(as_text=True)
    heading = re.findall(r'<h3 class="visit-heading">([^<]+)</h3>', page)
    assert heading == ["Visit from Google · newsletter / email / spring · 2 pages"]
    visit = page.split('class="visit-heading"', 1)[1].split("</section>", 1)[0]
    assert 'Viewed <a href="http://localhost/pricing" rel="noopener noreferrer">Pricing</a>' \
        in visit
    assert "Viewed <a href=\"http://localhost/about\" rel=\"noopener noreferrer\">About us</a>" \
        in visit
    assert "Clicked “<strong>Our partner</strong>” on <strong>/about</strong>" in visit
    assert "Downloaded <strong>Price list</strong>" in visit
    assert "127.0.0.0" not in page and "Mozilla" not in page  # no network address, no agent
    sources = page.split('id="sources-title"', 1)[1].split("</section>", 1)[0]
    assert "Original source" in sources and "<dd>spring</dd>" in sources
    assert "<dd>http://localhost/pricing</dd>" in sources  # the landing page, without its query


@pytest.mark.browser
def test_an_owner_reads_where_a_contact_came_from_and_what_they_viewed(app, client, live_server,
                                                                       page, shots):
    contact_id = _visit_from_a_campaign(app, client)
    from engine.auth.accounts import create_user
    with app.app_context():
        create_user("owner@example.com", "owner", password="correct horse battery")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server}/auth/login")
    page.get_by_label("Email").fill("owner@example.com")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server}/admin/")
    page.goto(f"{live_server}/admin/contacts/{contact_id}")
    sources = page.locator(".contact-sources")
    sources.get_by_role("heading", name="Original source").wait_for()
    assert "spring" in sources.inner_text() and "Email" in sources.inner_text()
    visit = page.locator(".timeline-group.visit").first
    assert visit.get_by_role("heading").inner_text() == (
        "Visit from Google · newsletter / email / spring · 2 pages")
    viewed = visit.get_by_role("link", name="Pricing")
    assert viewed.get_attribute("href") == "http://localhost/pricing"
    page.get_by_label("Viewed a page").check()  # the filter updates the list in place
    page.wait_for_url(f"**/admin/contacts/{contact_id}?type=page_view")
    assert page.locator(".timeline li").count() == 2
    page.set_viewport_size({"width": 375, "height": 800})
    shots(page, "contact-timeline")
