"""An editor writes an email template in a real browser, previews it as a contact and sends a
test to themself; screenshots of the editor and the preview at two widths."""
from __future__ import annotations

import pytest

from engine.contacts import service as contacts
from engine.db import write
from tests.admin_helpers import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def app(make_app, smtp_server):
    app = make_app(**smtp_server.config)
    with app.app_context(), write():
        contacts.upsert("priya@example.com", {"first_name": "Priya", "company": "Acme"})
    return app



def test_an_editor_writes_a_template_previews_it_and_sends_a_test(page, live_server, app, work,
                                                                  smtp_server, shots):
    problems = []  # script errors (what the Content-Security-Policy refused too), error answers
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400
            else None)
    make_user(app, "editor@example.com", "editor")
    page.goto(f"{live_server}/auth/login")
    page.get_by_label("Email").fill("editor@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server}/admin/")

    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Email").click()
    page.get_by_role("link", name="New template").click()
    page.get_by_label("Name", exact=True).fill("Spring news")
    page.get_by_label("Subject", exact=True).fill(
        "Spring at {{ company.name | default('your place') }}")
    page.get_by_label("Preheader").fill("Three things for {{ contact.first_name }}")
    page.get_by_label("Body").fill(
        '# Hello {{ contact.first_name | default("there") }}\n\n'
        "Here is what is new this spring.\n\n[Read more]({{ site.url }}/blog)\n")
    page.get_by_role("button", name="Preview changes").click()  # the draft, not saved
    frame = page.frame_locator("iframe.email-frame")
    frame.get_by_role("heading", name="Hello Alex").wait_for()  # the sample contact
    page.get_by_role("button", name="Save template").click()
    page.get_by_text("Template “Spring news” created.").wait_for()

    page.get_by_label("Preview as the contact with the email").fill("priya@example.com")
    page.get_by_role("button", name="Preview as this contact").click()
    frame.get_by_role("heading", name="Hello Priya").wait_for()
    assert page.locator(".preview-subject").inner_text() == "Spring at Acme"
    assert "Unsubscribe" in frame.locator("body").inner_text()
    assert "Three things for Priya" in page.locator(".preview-head").inner_text()
    shots(page, "mail-template")
    page.locator("iframe.email-frame").screenshot(
        path=str(shots.folder / "mail-template-desktop-frame.png"))
    page.get_by_text("Phone", exact=True).click()
    assert page.locator("iframe.email-frame").bounding_box()["width"] == 375
    page.locator("iframe.email-frame").screenshot(
        path=str(shots.folder / "mail-template-phone-frame.png"))

    page.get_by_role("button", name="Send a test to me").click()
    page.get_by_text("is on its way to editor@example.com").wait_for()
    work(app)
    [message] = smtp_server.messages
    assert message["To"] == "editor@example.com"
    assert message["Subject"] == "[Test] Spring at Acme"
    assert "Hello Priya" in message.get_body(("plain",)).get_content()
    assert problems == []
