"""An owner defines a custom field, adds a contact with it set and changes the contact's stage,
in a real browser; screenshots of the forms and the profile at two widths."""
from __future__ import annotations

import pytest

from tests.admin_helpers import browser_signed_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_an_owner_adds_a_field_and_a_contact_then_edits_its_stage(page, live_server, app,
                                                                  shots):
    problems = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400
            else None)
    browser_signed_in(page, live_server, app, "owner@example.com", "owner")

    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Custom fields").click()
    page.get_by_text("Add a field").click()
    page.get_by_label("Label", exact=True).fill("Plan")
    page.get_by_label("Key").fill("plan")
    page.get_by_label("Type").select_option(label="Choice (one)")
    page.get_by_label("Options").fill("Free\nPro")
    page.get_by_role("button", name="Add the field").click()
    page.get_by_role("heading", name="Plan").wait_for()
    shots(page, "custom-fields")

    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Contacts").click()
    page.get_by_role("link", name="Add a contact").click()
    page.get_by_label("Email").fill("Zoe@Example.com")
    page.get_by_label("First name").fill("Zoe")
    page.get_by_label("Plan").select_option("Pro")
    page.get_by_label("Lifecycle stage").select_option(label="Lead")
    shots(page, "contact-new")
    page.get_by_role("button", name="Add the contact").click()
    page.get_by_text("zoe@example.com was added.").wait_for()

    page.get_by_role("link", name="Edit", exact=True).click()
    page.get_by_label("Lifecycle stage").select_option(label="Customer")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("Saved.").wait_for()
    profile = page.locator("section.card").filter(has_text="Profile")
    assert "customer" in profile.inner_text().lower()
    assert "Pro" in profile.inner_text()
    page.locator("#notes").get_by_label("New note").fill("Met at the fair")
    page.get_by_role("button", name="Add the note").click()
    page.locator("#notes .note-body").get_by_text("Met at the fair").wait_for()
    shots(page, "contact-profile")
    assert problems == []
