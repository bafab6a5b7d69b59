"""The Traffic page: figures from the daily roll-ups, over a chosen period, for signed-in people."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.db import db, utcnow
from plugins.tracking.models import DailyTotals, MonthlyActives
from plugins.tracking.tests.helpers import IPHONE, drain, send, signed_in


def visit_site(app):
    first, second = app.test_client(), app.test_client()
    send(first, app, url="http://localhost/?utm_source=news&utm_medium=email&utm_campaign=june")
    send(first, app, url="http://localhost/pricing")
    send(first, app, "download", url="http://localhost/pricing", h="http://localhost/a/b.pdf")
    send(second, app, url="http://localhost/pricing", r="https://www.linkedin.com/feed/",
         agent=IPHONE)
    send(second, app, url="http://localhost/%3Cscript%3Ealert(1)%3C/script%3E")
    drain(app)


@pytest.mark.both_backends
def test_rollups_count_views_visitors_visits_and_months(app):
    visit_site(app)
    with app.app_context():
        today = db.session.get(DailyTotals, utcnow().date())
        assert (today.page_views, today.visitors, today.visits, today.downloads) == (4, 2, 2, 1)
        month = db.session.scalar(select(MonthlyActives))
        assert (month.month, month.visitors, month.contacts) == (utcnow().strftime("%Y-%m"), 2, 0)
    visit_site(app)  # the same people again: views double, visitors do not
    with app.app_context():
        today = db.session.get(DailyTotals, utcnow().date(), populate_existing=True)
        assert (today.page_views, today.visitors) == (8, 4)  # two new browsers (new cookies)


def test_traffic_page_shows_the_period(app):
    visit_site(app)
    client = signed_in(app, "viewer")
    page = client.get("/admin/traffic/?days=7")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert re.search(r'id="t-views">4<', html) and re.search(r'id="t-visitors">2<', html)
    assert "/pricing" in html and "linkedin.com" in html and "news / email / june" in html
    assert "<svg" in html and "Monthly active visitors" in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    today = utcnow().date()
    older = client.get(f"/admin/traffic/?from={today - timedelta(days=40)}"
                       f"&to={today - timedelta(days=10)}").get_data(as_text=True)
    assert re.search(r'id="t-views">0<', older)
    dashboard = client.get("/admin/").get_data(as_text=True)
    assert '<p class="stat">4</p><p class="stat-label">page views by 2 visitors' in dashboard
    bad = client.get("/admin/traffic/?from=yesterday&to=2020-13-01")
    assert bad.status_code == 200 and "Dates must be YYYY-MM-DD." in bad.get_data(as_text=True)


def test_traffic_page_needs_a_signed_in_person_and_the_plugin(app):
    assert app.test_client().get("/admin/traffic/").status_code in (302, 401)
    client = signed_in(app, "viewer")
    nav = client.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/traffic/"' in nav and "Traffic, last 7 days" in nav
    app.extensions["magnet.plugins"].set_enabled("tracking", False)
    assert client.get("/admin/traffic/").status_code == 404
    dashboard = client.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/traffic/"' not in dashboard and "Traffic, last 7 days" not in dashboard


@pytest.mark.parametrize("referrer, utm, expected", [
    ("https://www.google.co.uk/", {}, ("google.co.uk", "organic", "")),
    ("https://duckduckgo.com/", {}, ("duckduckgo.com", "organic", "")),
    ("https://t.co/x1", {}, ("t.co", "social", "")),
    ("https://t.comcast.net/", {}, ("t.comcast.net", "referral", "")),
    ("https://www.linkedin.com/feed/", {}, ("linkedin.com", "social", "")),
    ("https://partner.example/", {}, ("partner.example", "referral", "")),
    ("http://localhost/pricing", {}, ("(direct)", "(none)", "")),
    ("", {}, ("(direct)", "(none)", "")),
    ("https://www.google.com/", {"utm_source": "ads", "utm_medium": "cpc", "utm_campaign": "q4"},
     ("ads", "cpc", "q4")),
])
def test_visits_are_attributed_like_analytics_tools_do(referrer, utm, expected):
    from plugins.tracking.clean import source_of
    assert source_of(referrer, utm, "localhost") == expected


def test_a_batch_over_two_days_counts_each_days_visitors_and_the_months_once(app):
    """Active people are counted per day and per month from one batch: a browser seen on two
    days of a month is a visitor of each day and once of the month; seen again, of neither."""
    from datetime import UTC, date, datetime

    from engine.db import write
    from plugins.tracking import rollups

    def view(day: int, visitor: str) -> dict:
        return {"occurred_at": datetime(2026, 3, day, 12, tzinfo=UTC), "type": "page_view",
                "visitor_id": visitor, "contact_id": None, "url": "http://localhost/"}

    batch = [view(1, "a"), view(1, "c"), view(2, "a"), view(2, "b")]
    with app.app_context():
        for _ in range(2):
            with write():
                rollups.add(batch, [])
        days = {d.day: (d.page_views, d.visitors) for d in db.session.scalars(
            select(DailyTotals).where(DailyTotals.day.in_([date(2026, 3, 1), date(2026, 3, 2)])))}
        month = db.session.get(MonthlyActives, "2026-03")
    assert days == {date(2026, 3, 1): (4, 2), date(2026, 3, 2): (4, 2)}
    assert month.visitors == 3
