"""An editor builds a segment in a real browser, and a visitor enters it by registering for the
webinar; screenshots of the builder, the segment and the contact page at two widths."""
from __future__ import annotations

import pytest

from engine.testing import deliver_events
from tests.admin_helpers import PASSWORD, make_user
from tests.forms_support import FORMS

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def app(make_app):
    from engine.content.sync import sync
    app = make_app(FORM_MIN_FILL_SECONDS=0)
    with app.app_context():
        sync(FORMS.parent)
    return app



def settled(page, locator):
    """`locator` once htmx has swapped it in and bound it: a choice made in the moment between
    the two (htmx binds new content after its settle delay) would change nothing."""
    locator.wait_for()
    page.wait_for_function("() => !document.querySelector("
                           "'.htmx-added, .htmx-settling, .htmx-swapping')")
    return locator


def sign_in(page, live_server, app, role):
    make_user(app, f"{role}@example.com", role)
    page.goto(f"{live_server}/auth/login")
    page.get_by_label("Email").fill(f"{role}@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server}/admin/")


def test_an_editor_builds_a_segment_and_a_visitor_enters_it(page, live_server, app, work,
                                                             shots):
    problems = []  # script errors (what the Content-Security-Policy refused too), error answers
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400
            else None)
    sign_in(page, live_server, app, "editor")
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Segments").click()
    page.get_by_role("link", name="New segment").click()
    # htmx binds the builder's rows once the page has loaded: a kind chosen before that would
    # ask for nothing (a person would simply choose again)
    page.wait_for_url("**/admin/segments/new")
    page.wait_for_load_state("load")
    page.get_by_label("Name", exact=True).fill("Webinar registrants")
    row = page.locator("#c-0-0")
    row.get_by_label("Kind").select_option(label="Activity")  # htmx swaps in its inputs
    settled(page, row.get_by_label("Did")).select_option(label="Submitted a form")
    settled(page, row.get_by_label("Where")).select_option("form")  # the event's properties
    settled(page, row.get_by_label("Equals")).fill("webinar")
    sentence = row.locator(".sentence")
    sentence.filter(has_text="Submitted a form where form = webinar").wait_for()
    page.locator("#live-count").get_by_text("0 contacts match now").wait_for()

    count = page.locator("#live-count")
    page.get_by_role("button", name="Add a condition").click()  # added, then taken away
    page.locator("#c-0-1").get_by_text("Choose a field.").wait_for()
    count.get_by_text("Some conditions need more").wait_for()
    page.locator("#c-0-1").get_by_role("button", name="Remove this condition").click()
    page.locator("#c-0-1").wait_for(state="detached")
    count.get_by_text("0 contacts match now").wait_for()
    shots(page, "builder")

    page.get_by_role("button", name="Save segment").last.click()
    page.wait_for_url("**/admin/segments/*")
    assert "Webinar registrants" in page.locator("h1").inner_text()
    work(app)  # the build
    # the page watches its build and reloads itself once the segment is ready: a reload of
    # ours in the same moment would be cut short by that one
    page.locator(".page-head").get_by_text("ready").wait_for()
    page.wait_for_load_state("load")

    visitor = page.context.browser.new_context().new_page()
    visitor.goto(f"{live_server}/webinar")
    visitor.fill("#webinar-email", "Priya@Example.com")
    visitor.fill("#webinar-first_name", "Priya")
    visitor.check("#webinar-consent")
    visitor.locator("form[data-magnet-form=webinar] [type=submit]").click()
    visitor.get_by_text("You are registered").wait_for()
    visitor.context.close()
    deliver_events(app)  # her submission reaches the segment

    page.reload()
    page.get_by_role("heading", name="1 member").wait_for()
    assert "ready" in page.locator(".page-head").inner_text()
    shots(page, "segment")
    page.get_by_role("link", name="Priya").click()
    panel = page.locator(".segments-panel")
    assert "Webinar registrants" in panel.inner_text() and "since" in panel.inner_text()
    shots(page, "contact")
    assert problems == []
