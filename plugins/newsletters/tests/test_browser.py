"""An A/B test of two subjects end to end in a real browser: an editor writes a campaign to a
segment in the admin, tests two subjects on half of it, and sends it; the test group gets the
mail, the readers of one subject click (their mail client follows the tracking links), and
after the wait the winner goes to the rest - which the editor sees on the campaign's page.

Between the steps the test does what the workers would (the tick, the mail batches); the hour
of the wait passes on the engine's clock."""
from __future__ import annotations

import html
import re

import pytest
from playwright.sync_api import expect

from engine.segments import service as segments
from plugins.newsletters.tests.support import people, site, template, tick
from tests.admin_helpers import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HUMAN = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) " \
        "Chrome/124.0 Safari/537.36"
SUBJECTS = {"a": "Our spring news", "b": "20% off, this week only"}


@pytest.fixture
def app(make_app, smtp_server):
    return site(make_app, smtp_server)


def links(message, path: str) -> list[str]:
    body = message.get_body(("html",)).get_content()
    return [html.unescape(u) for u in re.findall(rf'(?:href|src)="([^"]*{path}[^"]+)"', body)]


def test_the_winning_subject_goes_to_the_rest(app, live_server, page, smtp_server, work, clock,
                                              shots):
    app.config["SITE_URL"] = live_server
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400
            else None)
    people(app, 8, country="FR")
    people(app, 3, prefix="uk", country="GB")
    with app.app_context():
        segments.save("In France", {"match": "all", "groups": [{"match": "all", "conditions": [
            {"kind": "field", "field": "country", "op": "equals", "value": "FR"}]}]})
    work(app)  # the segment's build
    template(app, "Spring news", "Spring at the shop",
             "Hello {{ contact.first_name }}! [See the offer](https://shop.example.com/offer)")
    make_user(app, "editor@example.com", "editor")
    page.goto(f"{live_server}/auth/login")
    page.get_by_label("Email").fill("editor@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server}/admin/")

    # The campaign, written in the admin: to the segment, two subjects on half of it.
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Campaigns").click()
    page.get_by_role("link", name="New campaign").first.click()
    page.locator("#name").fill("Spring news")
    page.locator("#template_id").select_option(label="Spring news")
    page.get_by_label("In France").first.check()
    expect(page.locator("#live-count")).to_contain_text("8 people would get it now")
    page.locator("#ab_field").select_option("subject")
    assert page.locator("#ab_a_from_name").is_hidden()  # only the subjects are asked for
    page.locator("#ab_a_subject").fill(SUBJECTS["a"])
    page.locator("#ab_b_subject").fill(SUBJECTS["b"])
    page.locator("#ab_share").fill("50")
    page.locator("#ab_wait_hours").fill("1")
    page.locator("#ab_min_sample").fill("1")
    page.locator("#ab_metric").select_option("clicks")
    page.get_by_role("button", name="Save draft").last.click()
    page.get_by_text("“Spring news” created.").wait_for()
    page.get_by_role("button", name="Send or schedule…").click()
    assert "8 people would get it now." in page.locator("#confirm-count").inner_text()
    assert "The test group: 4 people" in page.locator("main").inner_text()
    shots(page, "campaigns-confirm")
    page.get_by_role("button", name="Send now to 8").click()
    page.get_by_text("is sending").wait_for()
    campaign_page = page.url

    # The test group gets it: two of each subject.
    tick(app)
    work(app)
    assert sorted(m["Subject"] for m in smtp_server.messages) == sorted(
        [SUBJECTS["a"]] * 2 + [SUBJECTS["b"]] * 2)
    assert all(m["To"].startswith("p") for m in smtp_server.messages)  # the segment's only

    # Readers of B click (a person, past the scanners' first seconds); one reader of A opens.
    clock.advance(seconds=app.config["MAIL_SCANNER_SECONDS"] + 5)
    reader = page.context.browser.new_context(user_agent=HUMAN)
    by_subject = {s: [m for m in smtp_server.messages if m["Subject"] == s]
                  for s in SUBJECTS.values()}
    for message in by_subject[SUBJECTS["b"]]:
        click = links(message, "/email/c/")[0]
        assert reader.request.get(click, max_redirects=0).status == 302
    opened = reader.request.get(links(by_subject[SUBJECTS["a"]][0], "/email/o/")[0])
    assert opened.status == 200
    reader.close()
    page.goto(campaign_page)
    assert "The winner is chosen at" in page.locator("#ab-decision").inner_text()
    assert "4 of 8 sent" in page.locator("#progress").inner_text()

    # An hour later the tick decides, and the rest get B.
    clock.advance(hours=1)
    tick(app)
    work(app)
    tick(app)
    rest = [m["Subject"] for m in smtp_server.messages[4:]]
    assert rest == [SUBJECTS["b"]] * 4
    assert len({m["To"] for m in smtp_server.messages}) == 8
    page.reload()
    decision = page.locator("#ab-decision").inner_text()
    assert decision.startswith("Variant B won on click rate: 100.0% (2 of 2) against A 0.0%")
    assert "The rest get it." in decision
    assert "8 of 8 sent" in page.locator("#progress").inner_text()
    assert page.locator("h1 .nl-status").inner_text().lower() == "sent"
    shots(page, "campaigns-sent")
    assert problems == [], problems
