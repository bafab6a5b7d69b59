"""A nurture workflow end to end in a real browser: an editor builds it in the admin (form
submitted → email → wait a day → opened it? tag engaged : tag cold), activates it, a visitor
submits the form on the site, opens the email, and a day later the editor sees on her page
that she took the "yes" way.

Between the steps the test does what the worker would (deliver events, send mail, run due
steps); the day passes on the engine's clock."""
from __future__ import annotations

import re

import pytest

from engine.testing import deliver_events
from plugins.workflows.tests.support import path, run_due, template
from tests.admin_helpers import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HUMAN = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) " \
        "Chrome/124.0 Safari/537.36"


@pytest.fixture
def app(make_app, smtp_server):
    from engine.content.sync import sync
    site = make_app(FORM_MIN_FILL_SECONDS=0, MAIL_FROM="Acme <hello@acme.example>",
                    **smtp_server.config)
    with site.app_context():
        report = sync(site.config["CONTENT_PATH"])
        assert not report.errors, report.errors
    return site


def follow(page, control) -> None:
    """Click a link or a submit button once the page showing it has loaded: a click while
    the previous page's navigation is still finishing can be lost with it (a person would
    simply click again)."""
    page.wait_for_load_state("load")
    control.click()


def add_step(page, link, kind: str) -> None:
    follow(page, link)
    follow(page, page.get_by_role("link", name=kind, exact=True))


def test_a_contact_who_opens_the_email_takes_the_yes_way(app, live_server, page, smtp_server,
                                                         work, clock, shots):
    app.config["SITE_URL"] = live_server
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400
            else None)
    template(app, "Playbook welcome", "Your playbook", "Hello {{ contact.first_name }}!")
    make_user(app, "editor@example.com", "editor")
    page.goto(f"{live_server}/auth/login")
    page.get_by_label("Email").fill("editor@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server}/admin/")

    # The workflow, built in the admin.
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Workflows").click()
    page.get_by_role("link", name="New workflow").first.click()
    page.wait_for_load_state("load")  # scripts bound before choosing
    page.get_by_label("Name").fill("E-book nurture")
    page.get_by_label("A contact enters when they…").select_option("form_submitted")
    page.locator("#t_form").select_option("ebook")
    assert page.locator("#t_tag").is_hidden()  # only the chosen trigger's inputs show
    shots(page, "workflows-settings")
    follow(page, page.get_by_role("button", name="Create workflow"))
    page.get_by_text("Workflow “E-book nurture” created.").wait_for()
    add_step(page, page.get_by_role("link", name="Add the first step"), "Send an email")
    page.get_by_label("Email template").select_option(label="Playbook welcome")
    follow(page, page.get_by_role("button", name="Save step").last)
    add_step(page, page.get_by_role("link", name="Add a step after s1"), "Wait")
    page.locator("#amount").fill("1")
    page.locator("#unit").select_option("days")
    follow(page, page.get_by_role("button", name="Save step").last)
    add_step(page, page.get_by_role("link", name="Add a step after s2"),
             "If / else")
    page.locator("#c-0-0-step").select_option("s1")
    shots(page, "workflows-step-if")
    follow(page, page.get_by_role("button", name="Save step").last)
    add_step(page, page.get_by_role("link", name="Add a step after s3 on yes"),
             "Add or remove a tag")
    page.locator("#tag").fill("engaged")
    follow(page, page.get_by_role("button", name="Save step").last)
    add_step(page, page.get_by_role("link", name="Add a step after s3 on no"),
             "Add or remove a tag")
    page.locator("#tag").fill("cold")
    follow(page, page.get_by_role("button", name="Save step").last)
    flow = page.locator("#flow")
    assert "If opened the email of step s1" in flow.inner_text()
    assert page.locator("#step-s4 .wf-via").inner_text() == "yes of s3"
    assert page.locator("#step-s5 .wf-via").inner_text() == "no of s3"
    shots(page, "workflows-builder")
    follow(page, page.get_by_role("link", name="Activate"))
    follow(page, page.get_by_role("button", name="Activate"))
    page.get_by_text("“E-book nurture” is active.").wait_for()
    workflow_id = int(page.url.rstrip("/").split("/")[-1])

    # A visitor asks for the e-book on the site, and gets the email.
    visitor = page.context.browser.new_context(user_agent=HUMAN).new_page()
    visitor.goto(f"{live_server}/")
    form = visitor.locator("form[data-magnet-form=ebook]")
    form.get_by_label("Work email").fill("ada@example.com")
    form.get_by_label("First name").fill("Ada")
    form.locator("input[name=consent]").check()
    with visitor.expect_response(lambda r: r.url.endswith("/forms/ebook")
                                 and r.request.method == "POST") as submitted:
        form.locator("[type=submit]").click()
    assert submitted.value.json()["ok"] is True
    for _ in range(2):
        work(app)
        deliver_events(app)
    work(app)
    mine = [m for m in smtp_server.messages if m["To"] == "ada@example.com"
            and m["Subject"] == "Your playbook"]
    assert len(mine) == 1, [(m["To"], m["Subject"]) for m in smtp_server.messages]

    # She opens it (her mail client loads the tracking image), and a day goes by.
    body = mine[0].get_body(("html",)).get_content()
    pixel = re.search(r'src="([^"]*/email/o/[^"]+)"', body).group(1)
    visitor.goto(live_server + pixel[pixel.index("/email/o/"):])
    visitor.context.close()
    work(app)
    deliver_events(app)
    clock.advance(days=1, minutes=1)
    run_due(app)
    deliver_events(app)
    contact_id = _contact(app)
    assert path(app, workflow_id, contact_id)[-2:] == [("s3", "yes"), ("s4", "tagged engaged")]

    # The editor sees it on her page.
    page.goto(f"{live_server}/admin/contacts/{contact_id}")
    panel = page.locator("#workflows-panel")
    history = panel.locator(".wf-history li").all_inner_texts()
    assert any(line.startswith("s3 · If / else: yes") for line in history), history
    assert any(line.startswith("s4 · Add or remove a tag: tagged engaged") for line in history)
    assert "completed" in panel.inner_text().lower()
    shots(page, "workflows-contact")
    assert problems == [], problems


def _contact(app) -> int:
    from sqlalchemy import select

    from engine.contacts.models import Contact
    from engine.db import db
    with app.app_context():
        return db.session.scalar(select(Contact.id).where(Contact.email == "ada@example.com"))
