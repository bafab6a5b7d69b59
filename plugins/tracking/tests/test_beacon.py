"""What one client can write through the beacon, and about which pages: rate limits per address,
the site's own hosts only, real pages only, and text PostgreSQL can store."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from engine.contacts.visitors import COOKIE
from engine.db import db
from plugins.tracking.models import DailyPage
from plugins.tracking.tests.helpers import CHROME, drain, events, page_token, send


def post(client, payload, **headers):
    return client.post("/t/event", data=json.dumps(payload), content_type="text/plain",
                       headers={"User-Agent": CHROME, **headers})


@pytest.fixture
def clock(monkeypatch):
    """The rate limits' clock, frozen in the middle of a minute (their windows are minutes):
    this process's counts and the shared ones move on together."""
    from engine.forms import security
    from engine.web import ratelimit
    now = SimpleNamespace(value=1_800_000_030.0)
    fake = SimpleNamespace(time=lambda: now.value, monotonic=security.time.monotonic)
    monkeypatch.setattr(security, "time", fake)
    monkeypatch.setattr(ratelimit, "time", fake)  # the limits count in `BlockLimits`
    return now


def test_one_address_writes_a_bounded_number_of_events_a_minute(app, clock):
    """Beyond 120 new visitors (no cookie) and 600 events a minute, an address gets 429."""
    answers = [send(app.test_client(), app, url=f"http://localhost/?n={n}").status_code
               for n in range(125)]
    assert answers == [204] * 120 + [429] * 5
    returning = app.test_client()
    send(returning, app)  # counted as new, refused: no cookie either
    assert returning.get_cookie(COOKIE) is None
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert send(elsewhere, app).status_code == 204  # another address has its own count
    answers = [send(elsewhere, app).status_code for _ in range(600)]
    assert answers == [204] * 599 + [429]
    refused = send(elsewhere, app)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "60"
    assert "too many events" in refused.get_json()["error"]
    clock.value += 60  # the next minute
    assert send(elsewhere, app).status_code == 204
    assert send(app.test_client(), app).status_code == 204
    assert drain(app) == 120 + 600 + 2


def test_the_limits_hold_across_processes(make_app, clock):
    """Two web processes (two apps, one Redis): each counts on its own and reports every tenth
    hit, so together they stop an address within a block per process of the limit."""
    first = make_app(TRACKING_RATE_LIMIT=100)
    second = make_app(instance=Path(first.instance_path), TRACKING_RATE_LIMIT=100,
                      SQLALCHEMY_DATABASE_URI=first.config["SQLALCHEMY_DATABASE_URI"])
    returning = {}
    for app in (first, second):
        returning[app] = client = app.test_client()
        send(client, app)  # each process gets a returning visitor (a cookie of its own)
    accepted = 2
    for _ in range(70):
        for app in (first, second):
            accepted += send(returning[app], app).status_code == 204
    assert 100 <= accepted <= 100 + 2 * 9
    assert send(returning[first], first).status_code == 429


def test_ipv6_clients_are_counted_by_their_64(app, clock):
    app.config.update(TRACKING_RATE_LIMIT=3)
    answers = []
    for host in range(4):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"2001:db8:1:2::{host + 1}"
        answers.append(send(client, app).status_code)
    assert answers == [204, 204, 204, 429]


def test_only_the_sites_own_hosts_count(make_app):
    """Not the request's Host header: anyone can send that."""
    app = make_app(SITE_URL="https://www.example.com", TRACKING_HOSTS="example.com shop.example")
    client = app.test_client()
    phish = "http://evil.example/phish"
    assert post(client, {"k": page_token(app, phish), "t": "page_view", "u": phish},
                Host="evil.example").status_code == 400
    for url in ("https://www.example.com/pricing", "https://example.com/",
                "http://shop.example/cart", "https://WWW.example.com:443/about"):
        assert post(client, {"k": page_token(app, url), "t": "page_view", "u": url}).status_code \
            == 204, url
    drain(app)
    assert [e.url for e in events(app)] == [
        "https://www.example.com/pricing", "https://example.com/", "http://shop.example/cart",
        "https://www.example.com/about"]


def test_without_site_url_the_request_host_is_the_reference(make_app):
    app = make_app(SITE_URL="")
    client = app.test_client()
    here, there = "http://localhost/a", "http://evil.example/a"
    assert post(client, {"k": page_token(app, here), "t": "page_view", "u": here}).status_code \
        == 204
    assert post(client, {"k": page_token(app, there), "t": "page_view", "u": there}).status_code \
        == 400


def test_events_about_pages_the_site_did_not_serve_are_refused(app, client):
    """The token a page carries is that page's: an invented page has none."""
    home = page_token(app, "http://localhost/")
    for url in ("http://localhost/invented", "http://localhost/?utm_source=x"):
        answer = post(client, {"k": home, "t": "page_view", "u": url, "n": "Free money"})
        assert answer.status_code == (400 if "invented" in url else 204), url
    answer = post(client, {"k": home, "t": "click", "u": "http://localhost/invented",
                           "h": "https://example.org/"})
    assert answer.status_code == 400 and "not the page" in answer.get_json()["error"]
    drain(app)
    assert [e.url for e in events(app)] == ["http://localhost/?utm_source=x"]
    with app.app_context():
        assert list(db.session.scalars(select(DailyPage.path))) == ["/"]


def test_the_token_on_a_page_is_accepted_for_that_page(app, client):
    html = client.get("/pricing").get_data(as_text=True)
    token = html.split('data-k="', 1)[1].split('"', 1)[0]
    url = "http://localhost/pricing?utm_source=news"
    assert post(client, {"k": token, "t": "page_view", "u": url}).status_code == 204
    assert post(client, {"k": token, "t": "page_view", "u": "http://localhost/"}).status_code \
        == 400


@pytest.mark.both_backends
@pytest.mark.parametrize("url", [
    "http://localhost/?utm_source=news%00letter",
    "http://localhost/?utm_campaign=%01spring",
    "http://localhost/a%00b",
    "http://localhost/a\x00b",
    "http://localhost/" + "a" * 501,
], ids=["nul-in-utm", "control-in-utm", "encoded-nul-in-path", "nul-in-path", "long-path"])
def test_addresses_the_database_cannot_store_are_refused_at_the_edge(app, client, url):
    answer = post(client, {"k": page_token(app, url.replace("\x00", "")), "t": "page_view",
                           "u": url})
    assert answer.status_code == 400
    assert "control characters" in answer.get_json()["error"] or "too long" in \
        answer.get_json()["error"]
    assert send(client, app, url="http://localhost/after").status_code == 204
    drain(app)
    assert [e.url for e in events(app)] == ["http://localhost/after"]


def test_titles_are_bounded_and_kept_as_text(app, client):
    from engine.contacts import identity
    from engine.contacts.models import Contact
    from engine.db import write
    from plugins.tracking.tests.helpers import signed_in
    title = "<script>alert(1)</script>" + "x" * 500
    assert send(client, app, n=title).status_code == 204
    drain(app)
    [event] = events(app)
    assert event.properties["title"] == title[:200]
    with app.app_context(), write() as session:
        contact = Contact(email="t@example.com", custom={}, consent_proof={}, first_touch={},
                          last_touch={})
        session.add(contact)
        session.flush()
        identity.identify(event.visitor_id, contact.id)
        contact_id = contact.id
    page = signed_in(app, "viewer").get(f"/admin/contacts/{contact_id}").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
