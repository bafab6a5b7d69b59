"""A campaign's report as readers make it: the emails sent to the sink, their open pixels and
links requested as a person's browser and as machines (Apple's proxy, a link scanner), a
bounce, a complaint, a one-click unsubscribe and a form submission; then the figures, the
links, the hours, the CSV, the A/B figures and the comparison."""
from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest

from engine import events
from engine.db import db, write
from engine.mail import tokens
from engine.mail.bounces import record_bounce
from engine.mail.models import MailSend
from plugins.newsletters import reports, service
from plugins.newsletters.models import Campaign
from plugins.newsletters.tests.support import (
    SITE,
    campaign,
    people,
    send_all,
    site,
    template,
    tick,
)
from tests.admin_helpers import signed_in, token_for

pytestmark = pytest.mark.both_backends  # the report's SQL reads JSON and dates per backend

BROWSER = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/124.0 Safari/537.36")
SCANNER = "Mozilla/5.0 (compatible; BingPreview/1.0b)"
BODY = ("Hello {{ contact.first_name | default('there') }}! "
        "[See the offer](https://shop.example.com/offer) or [read the blog]"
        "(https://shop.example.com/blog)")


class Copy:
    """One recipient's message as received: its open pixel, tracked links, unsubscribe URL."""

    def __init__(self, app: Any, message: Any) -> None:
        self.to = str(message["To"])
        html = message.get_body(("html",)).get_content()
        self.pixel = re.search(r'src="([^"]*/email/o/[^"]+)"', html)[1]
        self.links: dict[str, str] = {}
        with app.app_context():
            for href in re.findall(r'href="([^"]*/email/c/[^"]+)"', html):
                _, url = tokens.read_click_token(href.rsplit("/", 1)[1])
                self.links[url.split("?")[0]] = href
            self.send_id = tokens.read_open_token(self.pixel.rsplit("/", 1)[1])
        self.unsubscribe = re.search(r"<(https://[^>]+)>", str(message["List-Unsubscribe"]))[1]

    def open(self, client: Any, agent: str = BROWSER) -> None:
        assert client.get(self.pixel.removeprefix(SITE),
                          headers={"User-Agent": agent}).status_code == 200

    def click(self, client: Any, url: str, agent: str = BROWSER) -> None:
        response = client.get(self.links[url].removeprefix(SITE), headers={"User-Agent": agent})
        assert response.status_code == 302 and response.location.startswith(url)


def _copies(app: Any, smtp_server: Any) -> dict[str, Copy]:
    return {copy.to: copy for copy in (Copy(app, m) for m in smtp_server.messages)}


def _sent_campaign(app: Any, smtp_server: Any, count: int, **values: Any) -> tuple[
        int, dict[str, Copy]]:
    before = len(smtp_server.messages)
    cid = campaign(app, template(app, name=f"Email {before}", body=BODY), **values)
    with app.app_context():
        service.schedule(cid)
    send_all(app)
    assert len(smtp_server.messages) == before + count
    copies = {copy.to: copy for copy in (Copy(app, m) for m in smtp_server.messages[before:])}
    return cid, copies


def _report(app: Any, cid: int) -> reports.Report:
    with app.app_context():
        return reports.report(db.session.get(Campaign, cid))


def test_the_report_counts_people_not_machines(make_app, smtp_server, clock):
    app = site(make_app, smtp_server)
    ids = people(app, 6)
    people(app, 1, prefix="=calc")  # an address a spreadsheet would run as a formula
    cid, copies = _sent_campaign(app, smtp_server, 7, conversion_form="signup",
                                 conversion_days=7)
    p = [copies[f"p{n}@example.org"] for n in range(6)]
    client = app.test_client()

    p[0].open(client, agent="Mozilla/5.0")  # Apple's privacy proxy, on arrival
    p[2].open(client, agent="Mozilla/5.0")
    p[2].click(client, "https://shop.example.com/offer", agent=SCANNER)  # a link scanner
    clock.advance(seconds=90)  # past MAIL_SCANNER_SECONDS: people now
    p[0].open(client)
    p[0].open(client)  # opened twice: one person
    p[0].click(client, "https://shop.example.com/offer")
    p[0].click(client, "https://shop.example.com/offer")
    p[0].click(client, "https://shop.example.com/blog")
    p[1].click(client, "https://shop.example.com/offer")  # images off: the click is the open
    answer = client.post(p[4].unsubscribe.removeprefix(SITE), data="List-Unsubscribe=One-Click",
                         content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 200
    with app.app_context():
        record_bounce(email="p3@example.org", kind="hard", source="test", send_id=p[3].send_id)
        record_bounce(email="p5@example.org", kind="soft", source="test", send_id=p[5].send_id)
        record_bounce(email="p2@example.org", kind="complaint", source="test",
                      send_id=p[2].send_id)
        with write():
            events.record("form_submitted", contact_id=ids[0], properties={"form": "signup"})
            events.record("form_submitted", contact_id=ids[1], properties={"form": "other"})

    found = _report(app, cid)
    t = found.totals
    assert (found.recipients, t.sent, t.bounced, t.hard, t.soft, t.delivered) == (7, 7, 2, 1, 1, 5)
    assert (t.opens, t.machine_opens, t.clickers, t.clicks) == (2, 2, 2, 4)
    assert (t.unsubscribes, t.complaints, t.conversions) == (2, 1, 1)  # the complaint unsubscribes
    assert (t.open_rate, t.click_rate, t.bounce_rate) == (2 / 5, 2 / 5, 2 / 7)
    assert [(link.shown, link.total, link.people) for link in found.links] == [
        ("https://shop.example.com/offer", 3, 2), ("https://shop.example.com/blog", 1, 1)]
    assert "utm_campaign=campaign-" in found.links[0].url
    assert len(found.hours) == 1 and (found.hours[0].opens, found.hours[0].clicks) == (2, 2)
    assert sum(h.opens for h in found.hours) == 2
    assert (found.waiting, found.not_sent, found.variants.keys()) == (0, 0, {"a"})

    with app.app_context():
        rows = list(reports.csv_rows(db.session.get(Campaign, cid)))
    assert rows[0] == list(reports.CSV_COLUMNS)
    by_email = {row[0]: row for row in rows[1:]}
    assert len(by_email) == 7 and "'=calc0@example.org" in by_email
    first = by_email["p0@example.org"]
    assert first[1:3] == ["", "sent"] and first[4] and first[5] and first[6]
    assert by_email["p3@example.org"][7:] == ["hard", ""]
    assert by_email["p5@example.org"][7] == "soft"
    assert by_email["p4@example.org"][8] == by_email["p2@example.org"][8] == "yes"
    assert by_email["p1@example.org"][5] == by_email["p1@example.org"][6]  # click = open

    viewer = signed_in(app, "viewer")
    page = viewer.get(f"/admin/campaigns/{cid}/report")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "40.0%" in html and "2 people opened · 2 machine opens not counted" in html
    assert "2 people clicked, 4 clicks" in html
    assert "1 hard · 1 soft" in html and "submitted “signup” within 7 days" in html
    assert '<svg class="chart line-chart"' in html and "https://shop.example.com/offer<" in html
    assert "Download CSV" not in html  # a viewer may read the report, not export addresses
    refused = viewer.post(f"/admin/campaigns/{cid}/report.csv",
                          data={"csrf_token": token_for(viewer)})
    assert refused.status_code == 403
    assert viewer.get("/admin/campaigns/999/report").status_code == 404

    editor = signed_in(app, "editor")
    assert "Download CSV" in editor.get(f"/admin/campaigns/{cid}/report").get_data(as_text=True)
    exported = editor.post(f"/admin/campaigns/{cid}/report.csv",
                           data={"csrf_token": token_for(editor)})
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    assert f'filename="campaign-{cid}-november-news.csv"' in exported.headers[
        "Content-Disposition"]
    assert list(csv.reader(io.StringIO(exported.get_data(as_text=True).lstrip("\ufeff")))) == rows
    with app.app_context():
        from engine.audit import recent
        assert [e.action for e in recent(action="campaign.export")] == ["campaign.export"]


def test_variants_decision_and_comparison(make_app, smtp_server, clock):
    app = site(make_app, smtp_server)
    people(app, 4)
    first, _ = _sent_campaign(app, smtp_server, 4, name="October news")
    clock.advance(hours=1)
    cid, copies = _sent_campaign(app, smtp_server, 4, name="November news", ab={
        "field": "subject", "variants": [{"subject": "Big news"}, {"subject": "Small news"}],
        "share": 100, "metric": "clicks", "wait_hours": 1, "min_sample": 1})
    with app.app_context():
        by_send = {s.id: s.mailing_id for s in db.session.query(MailSend)}
        keys = {m.id: m.key[-1] for m in service.mailings(db.session.get(Campaign, cid))}
    variant = {to: keys[by_send[copy.send_id]] for to, copy in copies.items()}
    assert sorted(variant.values()) == ["a", "a", "b", "b"]
    clock.advance(minutes=5)
    client = app.test_client()
    for to, copy in copies.items():
        if variant[to] == "a":
            copy.click(client, "https://shop.example.com/offer")
    clock.advance(hours=1)
    tick(app)

    found = _report(app, cid)
    assert found.campaign.status == "sent" and found.decision["winner"] == "a"
    assert found.labels == {"a": "Subject: Big news", "b": "Subject: Small news"}
    a, b = found.variants["a"], found.variants["b"]
    assert (a.sent, a.clickers, a.click_rate, b.sent, b.clickers) == (2, 2, 1.0, 2, 0)
    assert found.totals.clickers == 2

    html = signed_in(app, "viewer").get(f"/admin/campaigns/{cid}/report").get_data(as_text=True)
    assert "Variant A won on click rate" in html and "P(best)" in html
    assert "Subject: Small news" in html and "winner" in html

    with app.app_context():
        compared = reports.comparison()
    assert [(c.campaign.id, c.figures.sent, c.figures.click_rate) for c in compared] == [
        (cid, 4, 0.5), (first, 4, 0.0)]
    assert compared[1].figures.open_rate == 0.0 and compared[1].figures.bounce_rate == 0.0
