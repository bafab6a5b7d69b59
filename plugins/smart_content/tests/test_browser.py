"""Smart content in a real browser: a LinkedIn campaign's visitor keeps their variant through
the visit, a contact who becomes sales-qualified sees "talk to sales" on their next page, and a
browser without JavaScript sees the same variants (they are chosen on the server)."""
from __future__ import annotations

import pytest

from engine.contacts import service as contacts
from engine.contacts import visitors
from engine.db import write
from engine.testing import deliver_events
from plugins.smart_content.tests.support import LINKEDIN, SALES, block, page, trusted_contact
from tests.forms_support import forms_site

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def app(make_app):
    site = forms_site(make_app)
    block(site, "cta", [SALES, LINKEDIN], default="Download the free guide.")
    page(site, "offer", "# Our offer\n\n[smart cta]\n\n[Pricing](/pricing)")
    page(site, "pricing", "# Pricing\n\n[smart cta]")
    return site


def block_text(page) -> str:
    return page.locator(".smart-block").inner_text()


def test_a_linkedin_visit_keeps_its_variant_on_later_pages(app, live_server, page, shots):
    page.goto(f"{live_server}/offer?utm_source=linkedin&utm_medium=social")
    assert block_text(page) == "Welcome, LinkedIn reader!"
    page.get_by_role("link", name="Pricing").click()
    page.wait_for_url(f"{live_server}/pricing")
    assert block_text(page) == "Welcome, LinkedIn reader!"
    shots(page, "smart-content-linkedin")
    other = page.context.browser.new_context()
    try:
        stranger = other.new_page()
        stranger.goto(f"{live_server}/pricing")
        assert block_text(stranger) == "Download the free guide."
    finally:
        other.close()


def test_a_contact_who_becomes_sales_qualified_sees_talk_to_sales(app, live_server, page):
    vid = "c" * 32
    with app.test_request_context():
        value = visitors.cookie_value(vid)
    page.context.add_cookies([{"name": visitors.COOKIE, "value": value, "url": live_server}])
    trusted_contact(app, "lee@example.com", vid, lifecycle_stage="marketing_qualified")
    page.goto(f"{live_server}/offer")
    assert block_text(page) == "Download the free guide."
    with app.app_context(), write():
        contacts.upsert("lee@example.com", {"lifecycle_stage": "sales_qualified"})
    deliver_events(app)
    page.goto(f"{live_server}/pricing")
    assert block_text(page) == "Talk to sales today."


def test_a_visitor_who_fills_in_a_form_is_known_on_the_next_pages(app, live_server, page):
    """The real path: the form makes this browser trusted (it gave the address first); when
    the contact later becomes sales-qualified, the next page shows "talk to sales"."""
    page.goto(f"{live_server}/forms/ebook")
    page.get_by_label("Work email").fill("kim@example.com")
    page.get_by_label("First name").fill("Kim")
    page.get_by_role("checkbox").check()
    with page.expect_response(lambda r: r.request.method == "POST" and "/forms/ebook" in r.url
                              ) as sent:
        page.get_by_role("button", name="Send me the playbook").click()
    assert sent.value.ok
    deliver_events(app)
    page.goto(f"{live_server}/offer")
    assert block_text(page) == "Download the free guide."
    with app.app_context(), write():
        contacts.upsert("kim@example.com", {"lifecycle_stage": "sales_qualified"})
    deliver_events(app)
    page.goto(f"{live_server}/pricing")
    assert block_text(page) == "Talk to sales today."


def test_without_javascript_the_variants_are_the_same(app, live_server, browser):
    context = browser.new_context(java_script_enabled=False)
    try:
        tab = context.new_page()
        tab.goto(f"{live_server}/offer?utm_source=linkedin")
        assert block_text(tab) == "Welcome, LinkedIn reader!"
        tab.goto(f"{live_server}/pricing")
        assert block_text(tab) == "Welcome, LinkedIn reader!"
    finally:
        context.close()
