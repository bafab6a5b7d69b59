"""Lead scoring end to end in a real browser: an owner sets the thresholds and writes rules, a
visitor reads the pricing page twice and asks for the e-book, and sales hears about her.

Everything a person does goes through Chromium; between the steps the test does what the
worker would (store the beacons' events, deliver the event stream, run the outbox)."""
from __future__ import annotations

import html as html_lib
import re

import pytest
from sqlalchemy import select

from engine.contacts.models import Contact
from engine.db import db
from engine.events.models import Activity
from engine.jobs import enqueue
from engine.testing import deliver_events, wait_until
from plugins.scoring.models import ContactScore, ScoreAward
from tests.admin_helpers import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ADA = "ada@example.com"


@pytest.fixture
def app(make_app, smtp_server):
    """The demo site, mail going to the test's SMTP sink, and the headless browser's visits
    counted (it says it is headless; bot filtering has tests of its own)."""
    from engine.content.sync import sync
    site = make_app(FORM_MIN_FILL_SECONDS=0, **smtp_server.config)
    with site.app_context():
        report = sync(site.config["CONTENT_PATH"])
        assert not report.errors, report.errors
        plugins = site.extensions["magnet.plugins"]
        data = plugins.settings_formdata("tracking")
        data.setlist("filter_bots", [])
        form, _ = plugins.save_settings("tracking", data)
        assert not form.errors, form.errors
    return site


def process(app, work) -> None:
    """What the worker does in the background: store what the tracking beacon accepted, deliver
    the event stream (scores, stages, hand-offs), run what follows (the outbox: mail)."""
    with app.app_context():
        enqueue("tracking.drain")
    work(app)
    deliver_events(app)
    work(app)


def stage_of(app, email: str) -> str | None:
    with app.app_context():
        stage = db.session.scalar(select(Contact.lifecycle_stage).where(Contact.email == email))
        db.session.rollback()
        return stage


def journey(app) -> str:
    """What the database holds, for a failure's message: the events (whose, which page), the
    scores and the awards."""
    with app.app_context():
        lines = [f"event {a.id} {a.type} contact={a.contact_id} "
                 f"path={(a.properties or {}).get('path')}"
                 for a in db.session.scalars(select(Activity).order_by(Activity.id))]
        lines += [f"score contact={s.contact_id} fit={s.fit} acc={s.acc:.2f}"
                  for s in db.session.scalars(select(ContactScore))]
        lines += [f"award rule={w.rule_id} event={w.event_id} points={w.points}"
                  for w in db.session.scalars(select(ScoreAward))]
        db.session.rollback()
    return "\n".join(lines)


def settled(page, locator):
    """`locator` once htmx has swapped it in and bound it."""
    locator.wait_for()
    page.wait_for_function("() => !document.querySelector("
                           "'.htmx-added, .htmx-settling, .htmx-swapping, .htmx-request')")
    return locator


def numbers(cells) -> list[int]:
    return [int(text.replace("−", "-").replace("+", "")) for text in cells.all_inner_texts()]


def visit(visitor, url: str) -> None:
    """Open a page and wait until the tracking beacon has reported the view."""
    with visitor.expect_response(lambda r: r.url.endswith("/t/event")
                                 and r.request.method == "POST"):
        visitor.goto(url)


def test_a_visitor_qualifies_and_sales_hears_why(app, live_server, page, smtp_server, work,
                                                 shots):
    app.config["SITE_URL"] = live_server  # the beacon counts the site's own host; mail links
    problems: list[str] = []  # script errors (the Content-Security-Policy's too), error answers
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400
            else None)

    # 1. The owner signs in and sets the thresholds and the hand-off.
    make_user(app, "owner@example.com", "owner")
    page.goto(f"{live_server}/auth/login")
    page.get_by_label("Email").fill("owner@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server}/admin/")
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Scoring").click()
    page.get_by_role("heading", name="Lead scoring").wait_for()
    page.get_by_role("link", name="Change the thresholds, half-life and hand-off").click()
    page.wait_for_load_state("load")  # scripts bound before choosing
    page.get_by_label("Marketing-qualified at a combined score of").fill("30")
    page.locator("#mql_fit").fill("0")
    page.get_by_label("Hand off to sales on reaching").select_option(label="Marketing-qualified")
    page.get_by_label("Otherwise send hand-offs to").fill("sales@example.com")
    page.get_by_role("button", name="Save settings").click()
    page.get_by_text("Settings of Lead scoring saved.").wait_for()

    # 2. Two engagement rules and a fit rule, through their forms.
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Scoring").click()
    summary = page.locator(".scoring-summary")
    assert "marketing-qualified</strong> at a combined score of 30" in summary.inner_html()
    page.get_by_role("link", name="Add an engagement rule").first.click()
    page.wait_for_load_state("load")  # scripts bound before choosing
    page.get_by_label("Name", exact=True).fill("Pricing page")
    page.get_by_label("Points", exact=True).fill("10")
    page.get_by_label("Each time the contact…").select_option(label="Viewed a page")
    settled(page, page.get_by_role("button", name="Add a filter")).click()
    settled(page, page.locator("#f-0-prop")).select_option("path")
    page.locator("#f-0-op").select_option(label="contains")
    page.locator("#f-0-value").fill("/pricing")
    page.locator("#cap_count").fill("3")
    page.locator("#cap_period").select_option(label="a week")
    page.locator("#live-count").get_by_text("This rule touches 0 contacts now").wait_for()
    page.get_by_role("button", name="Save rule").last.click()
    page.get_by_text("Rule “Pricing page” saved.").wait_for()

    page.get_by_role("link", name="Add an engagement rule").first.click()
    page.wait_for_load_state("load")  # scripts bound before choosing
    page.get_by_label("Name", exact=True).fill("Submitted a form")
    page.get_by_label("Points", exact=True).fill("15")
    page.get_by_label("Each time the contact…").select_option(label="Submitted a form")
    settled(page, page.get_by_role("button", name="Add a filter"))
    page.get_by_role("button", name="Save rule").last.click()
    page.get_by_text("Rule “Submitted a form” saved.").wait_for()

    page.get_by_role("link", name="Add a fit rule").first.click()
    page.wait_for_load_state("load")  # scripts bound before choosing
    page.get_by_label("Name", exact=True).fill("Work email")
    page.get_by_label("Points", exact=True).fill("5")
    row = page.locator("#c-0-0")
    assert row.locator("#c-0-0-kind").input_value() == "field"  # a contact field, to begin
    row.locator("#c-0-0-field").select_option(label="Email")  # htmx shows its tests
    settled(page, row.locator("#c-0-0-op")).select_option(label="does not contain")
    settled(page, row.locator("#c-0-0-value")).fill("gmail")
    row.locator(".sentence").filter(has_text="Email does not contain").wait_for()
    page.locator("#live-count").get_by_text("This rule touches 0 contacts now").wait_for()
    page.get_by_role("button", name="Save rule").last.click()
    page.get_by_text("Rule “Work email” saved.").wait_for()

    work(app)  # the rules' recalculations (nobody to score yet)
    page.reload()
    listed = {name: page.locator("tr", has=page.get_by_text(name, exact=True)).inner_text()
              for name in ("Pricing page", "Submitted a form", "Work email")}
    assert "+10 for each “Viewed a page” where path contains “/pricing”, at most 3 times a " \
           "week" in listed["Pricing page"]
    assert "+15 for each “Submitted a form”" in listed["Submitted a form"]
    assert "+5 when" in listed["Work email"] and "Email does not contain" in listed["Work email"]
    assert all("ready" in text for text in listed.values()), listed
    shots(page, "scoring-rules")

    # 3. A visitor, in a browser of her own, reads the pricing page twice, then asks for the
    # e-book on the home page. As on a live site, the worker stores and delivers her page
    # views while she reads, before anyone knows who she is: they score once she is known.
    visitor = page.context.browser.new_context().new_page()
    visit(visitor, f"{live_server}/pricing")
    visit(visitor, f"{live_server}/pricing")
    process(app, work)
    visit(visitor, f"{live_server}/")
    form = visitor.locator("form[data-magnet-form=ebook]")
    form.get_by_label("Work email").fill(ADA)
    form.get_by_label("First name").fill("Ada")
    form.locator("input[name=consent]").check()
    with visitor.expect_response(lambda r: r.url.endswith("/forms/ebook")
                                 and r.request.method == "POST") as submitted:
        form.locator("[type=submit]").click()
    assert submitted.value.json()["ok"] is True
    visitor.context.close()

    def qualified() -> bool:
        process(app, work)
        return stage_of(app, ADA) == "marketing_qualified" and bool(smtp_server.messages)
    assert wait_until(qualified, seconds=15), journey(app)

    # 4. The owner finds her in the contact list, with her score, and opens her page: the
    # scores, the lines that make them, why, the hand-off.
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Contacts").click()
    listed_row = page.locator("tr", has=page.get_by_role("link", name="Ada"))
    assert "40" in listed_row.inner_text().split(), listed_row.inner_text()
    listed_row.get_by_role("link", name="Ada").click()
    panel = page.locator(".scoring-panel")
    panel.get_by_role("heading", name="Lead score").wait_for()
    combined, fit, engagement = (int(panel.locator(f"#score-{n}").inner_text())
                                 for n in ("combined", "fit", "engagement"))
    assert (combined, fit, engagement) == (40, 5, 35)
    fit_lines = panel.locator("#fit-lines tbody tr")
    assert fit_lines.locator("td").first.inner_text() == "Work email"
    assert sum(numbers(fit_lines.locator("td.num"))) == fit
    lines = panel.locator("#engagement-lines tbody tr")
    shown = {lines.nth(i).locator("td").first.inner_text().split("\n")[0]:
             (int(lines.nth(i).locator("td").nth(1).inner_text()),
              numbers(lines.nth(i).locator("td").last)[0]) for i in range(lines.count())}
    assert shown == {"Pricing page": (2, 20), "Submitted a form": (1, 15)}
    assert sum(now for _, now in shown.values()) == engagement
    reason = panel.locator("#score-reason").inner_text()
    assert reason.startswith("MQL since "), reason
    assert "Pricing page ×2" in reason and "Submitted a form" in reason, reason
    handoffs = panel.locator(".score-handoffs li")
    assert handoffs.count() == 1
    assert "MQL" in handoffs.inner_text() and "sales@example.com" in handoffs.inner_text()
    contact_url = page.url
    shots(page, "scoring-contact")

    # 5. Sales got one email: who, the score, why, and the way to her page.
    process(app, work)  # nothing more to send
    assert len(smtp_server.messages) == 1
    message = smtp_server.messages[0]
    assert message["To"] == "sales@example.com"
    assert "Ada" in message["Subject"] and "(score 40)" in message["Subject"], message["Subject"]
    html = message.get_body(("html",)).get_content()
    assert reason in html_lib.unescape(html), html
    assert re.search(rf'href="{re.escape(contact_url)}"', html), (contact_url, html)
    assert problems == [], problems
