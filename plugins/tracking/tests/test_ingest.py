"""The beacon, the buffer and what gets stored: validation, privacy, bots, fallback, identity."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.contacts import identity
from engine.contacts.models import Contact, Visitor
from engine.contacts.visitors import COOKIE
from engine.db import db, write
from engine.jobs.embedded import EmbeddedRedis
from plugins.tracking import clean
from plugins.tracking.models import Visit
from plugins.tracking.tests.helpers import (
    CHROME,
    IPHONE,
    configure,
    drain,
    events,
    page_token,
    public_page,
    send,
)

STATIC = Path(__file__).resolve().parent.parent / "static"


def test_script_is_small_and_placed_on_every_public_page(app, client):
    assert (STATIC / "t.js").stat().st_size < 2048
    html = public_page(app, "/pricing")
    assert 'src="/plugins/tracking/static/t.js"' in html
    assert 'data-e="/t/event"' in html
    assert "<noscript><img src=\"/t/pixel.gif?k=" in html
    script = client.get("/plugins/tracking/static/t.js")
    assert script.status_code == 200 and b"sendBeacon" in script.data


@pytest.mark.both_backends
def test_page_view_is_stored_with_context_and_visitor_cookie(app, client):
    response = send(client, app, url="http://localhost/pricing?utm_source=news&utm_medium=email"
                    "&utm_campaign=spring&email=a%40b.c#top", r="https://www.google.com/search?q=x",
                    n="Pricing", agent=IPHONE)
    assert response.status_code == 204
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None and cookie.http_only
    assert drain(app) == 1
    [event] = events(app)
    assert event.type == "page_view"
    assert event.url == ("http://localhost/pricing?utm_source=news&utm_medium=email"
                         "&utm_campaign=spring")  # the email parameter and fragment are gone
    props = event.properties
    assert props["utm"] == {"utm_source": "news", "utm_medium": "email", "utm_campaign": "spring"}
    assert props["referrer"] == "https://www.google.com/search"
    assert (props["device"], props["browser"].split()[0], props["language"]) == (
        "mobile", "Mobile", "en-GB")
    assert props["ip"] == "127.0.0.0" and props["title"] == "Pricing"
    assert len(event.visitor_id) == 32
    send(client, app, "click", h="https://partner.example/offer", x="Partner offer")
    drain(app)
    click = events(app)[-1]
    assert click.visitor_id == event.visitor_id  # the cookie set by the first answer
    assert click.properties["href"] == "https://partner.example/offer"


def test_a_browser_is_first_seen_at_its_first_event_and_last_seen_at_its_last(app, client):
    """Several page views of a new browser stored in one batch: its visitor row starts at the
    first of them and ends at the last; a later batch moves only the end."""
    for number in range(3):
        send(client, app, url=f"http://localhost/p{number}")
        time.sleep(0.01)
    drain(app)
    send(client, app, url="http://localhost/later")
    drain(app)
    stored = events(app)
    with app.app_context():
        visitor = db.session.get(Visitor, stored[0].visitor_id)
        first_seen, last_seen = visitor.first_seen, visitor.last_seen
    assert {e.visitor_id for e in stored} == {visitor.id}
    assert first_seen == stored[0].occurred_at < stored[2].occurred_at
    assert last_seen == stored[-1].occurred_at


def test_sessions_split_after_idle_time_and_new_campaigns(app, client):
    send(client, app, url="http://localhost/")
    send(client, app, url="http://localhost/a")
    drain(app)
    with app.app_context():
        [visit] = db.session.scalars(select(Visit)).all()
        assert (visit.page_views, visit.source, visit.medium) == (2, "(direct)", "(none)")
        with write():  # the visitor went away for 31 minutes
            visit.last_seen_at = visit.last_seen_at.replace(year=2020)
    send(client, app, url="http://localhost/b")
    send(client, app, url="http://localhost/c?utm_source=ads&utm_campaign=x")
    send(client, app, url="http://localhost/d?utm_source=ads&utm_campaign=x")  # same campaign
    drain(app)
    with app.app_context():
        visits = db.session.scalars(select(Visit).order_by(Visit.started_at)).all()
        assert [(v.landing_url, v.source, v.campaign, v.page_views) for v in visits] == [
            ("http://localhost/", "(direct)", "", 2), ("http://localhost/b", "(direct)", "", 1),
            ("http://localhost/c?utm_source=ads&utm_campaign=x", "ads", "x", 2)]
    assert len({e.properties["visit"] for e in events(app)}) == 3


@pytest.mark.parametrize("body, status", [
    ("x" * 5000, 413),
    ("not json", 400),
    ("[1, 2]", 400),
    ("[" * 2000 + "]" * 2000, 400),
    (json.dumps({"t": "page_view", "u": "http://localhost/"}), 403),  # no page token
    (json.dumps({"k": "forged.token", "t": "page_view", "u": "http://localhost/"}), 403),
], ids=["oversized", "not-json", "not-an-object", "deeply-nested", "no-token", "forged-token"])
def test_bad_bodies_are_refused(client, body, status):
    response = client.post("/t/event", data=body, content_type="text/plain",
                           headers={"User-Agent": CHROME})
    assert response.status_code == status
    assert "error" in response.get_json()


def test_bodies_without_a_length_are_read_only_when_the_server_ends_them(app):
    """A chunked body (no Content-Length) is read up to the limit when the server marks the
    stream as ended (gunicorn does), and never waited on otherwise."""
    from io import BytesIO

    from plugins.tracking.beacon import read_body
    body = b'{"t": "page_view"}'
    assert read_body({"wsgi.input": BytesIO(body), "wsgi.input_terminated": True}, 100) == body
    assert read_body({"wsgi.input": BytesIO(b"x" * 200), "wsgi.input_terminated": True},
                     100) is None
    assert read_body({"wsgi.input": BytesIO(body)}, 100) == b""
    assert read_body({"wsgi.input": BytesIO(body), "CONTENT_LENGTH": "oops"}, 100) is None
    assert read_body({"wsgi.input": BytesIO(body), "CONTENT_LENGTH": str(len(body))}, 100) == body


@pytest.mark.parametrize("fields, message", [
    ({"t": "purchase"}, "unknown event type"),
    ({"t": ["page_view"]}, "unknown event type"),
    ({"u": "javascript:alert(1)"}, "absolute http(s)"),
    ({"u": "http://[::1"}, "malformed url"),
    ({"u": "http://evil.example/"}, "not a page of this site"),
    ({"u": "http://localhost/" + "a" * 2100}, "too long"),
    ({"u": {"nested": 1}}, "must be strings"),
    ({"t": "click", "h": "mailto:x@example.com"}, "absolute http(s)"),
    ({"t": "form_view"}, "form's name"),
])
def test_bad_events_are_refused_with_a_reason_and_nothing_stored(app, client, fields, message):
    payload = {"k": page_token(app), "t": "page_view", "u": "http://localhost/", **fields}
    response = client.post("/t/event", data=json.dumps(payload), content_type="text/plain",
                           headers={"User-Agent": CHROME})
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert drain(app) == 0 and events(app) == []


def test_the_visitor_cookie_is_secure_when_the_beacon_comes_over_https(app, client):
    payload = {"k": page_token(app), "t": "page_view", "u": "https://localhost/"}
    answer = client.post("/t/event", data=json.dumps(payload), content_type="text/plain",
                         headers={"User-Agent": CHROME}, base_url="https://localhost")
    assert answer.status_code == 204
    assert ("magnet_vid=" in answer.headers["Set-Cookie"]
            and "Secure" in answer.headers["Set-Cookie"])


def test_pages_of_a_site_served_on_an_ipv6_address_are_its_own():
    from plugins.tracking import clean
    payload = {"t": "page_view", "u": "http://[::1]:8000/pricing?utm_source=x"}
    cleaned = clean.event(payload, hosts=frozenset({"[::1]:8000"}), agent=CHROME, ip="::1",
                          ip_mode="full", visitor_id="v")
    assert cleaned["u"] == "http://[::1]:8000/pricing?utm_source=x"
    assert clean.host_and_path(cleaned["u"]) == ("[::1]:8000", "/pricing")
    with pytest.raises(clean.BadEvent, match="not a page of this site"):
        clean.event(payload, hosts=frozenset({"[::2]:8000"}), agent=CHROME, ip="::1",
                    ip_mode="full", visitor_id="v")


def test_text_is_cleaned_and_forged_visitor_ids_are_ignored(app, client):
    client.set_cookie(COOKIE, "0123456789abcdef0123456789abcdef.forged-signature")
    send(client, app, "click", h="https://example.org/", x="Buy\x00 <b>now</b>\n" + "!" * 200,
         v="0123456789abcdef0123456789abcdef")
    drain(app)
    [event] = events(app)
    assert event.visitor_id != "0123456789abcdef0123456789abcdef"
    assert event.properties["label"] == ("Buy <b>now</b>" + "!" * 200)[:100]
    assert "\x00" not in event.properties["label"]


def test_do_not_track_and_global_privacy_control_are_honoured(app, client):
    assert send(client, app, headers={"DNT": "1"}).status_code == 204
    assert send(client, app, headers={"Sec-GPC": "1"}).status_code == 204
    assert client.get_cookie(COOKIE) is None  # not even a cookie
    drain(app)
    assert events(app) == []
    configure(app, honour_dnt=False)
    send(client, app, headers={"DNT": "1"})
    drain(app)
    assert len(events(app)) == 1


def test_consent_mode_records_nothing_until_the_visitor_agrees(app, client):
    configure(app, consent_mode=True)
    html = public_page(app)
    assert 'data-c="1"' in html and "consent.js" in html and "<noscript>" not in html
    send(client, app)
    client.set_cookie("magnet_consent", "no")
    send(client, app)
    drain(app)
    assert events(app) == [] and client.get_cookie(COOKIE) is None
    client.set_cookie("magnet_consent", "yes")
    send(client, app)
    drain(app)
    assert len(events(app)) == 1 and client.get_cookie(COOKIE) is not None


@pytest.mark.parametrize("agent", [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/124.0.0.0 Safari/537.36",
    "python-requests/2.31", "curl/8.5.0", "",
])
def test_bots_are_not_recorded(app, client, agent):
    assert send(client, app, agent=agent).status_code == 204
    drain(app)
    assert events(app) == []


def test_automated_browsers_and_hits_without_the_script_are_not_recorded(app, client):
    send(client, app, w=1)  # navigator.webdriver was true
    response = client.get("/t/pixel.gif?u=http://localhost/", headers={"User-Agent": CHROME})
    assert response.status_code == 403  # no page token: not from one of our pages
    drain(app)
    assert events(app) == []
    configure(app, filter_bots=False)
    send(client, app, w=1)
    drain(app)
    assert len(events(app)) == 1


def test_noscript_pixel_records_a_page_view(app, client):
    token = page_token(app, "http://localhost/landing")
    response = client.get(f"/t/pixel.gif?k={token}&u=http://localhost/x",
                          headers={"User-Agent": CHROME, "Referer": "http://localhost/landing"})
    assert response.status_code == 200 and response.mimetype == "image/gif"
    drain(app)
    [event] = events(app)
    assert event.url == "http://localhost/landing" and event.properties["noscript"] is True


def test_ip_address_setting(app, client):
    configure(app, ip_storage="none")
    assert send(client, app).status_code == 204
    drain(app)
    assert "ip" not in events(app)[0].properties
    configure(app, ip_storage="full")
    send(client, app)
    drain(app)
    assert events(app)[-1].properties["ip"] == "127.0.0.1"


@pytest.mark.both_backends
def test_redis_down_writes_straight_to_the_database(make_app, tmp_path):
    """The hand-over thread stores accepted events itself while Redis is unreachable."""
    server = EmbeddedRedis(tmp_path / "own-redis")
    server.start()
    try:
        app = make_app(REDIS_URL=server.url)
        client = app.test_client()
        assert send(client, app, url="http://localhost/before").status_code == 204
        assert drain(app) == 1
    finally:
        server.stop()
    started = time.monotonic()
    assert send(client, app, url="http://localhost/during").status_code == 204
    assert time.monotonic() - started < 1  # the hit does not wait on a dead Redis
    while len(events(app)) < 2 and time.monotonic() - started < 10:
        time.sleep(0.05)
    assert [e.url for e in events(app)] == ["http://localhost/before", "http://localhost/during"]
    server.start()
    try:
        assert send(client, app, url="http://localhost/after").status_code == 204
        assert drain(app) == 1
    finally:
        server.stop()
    assert [e.url for e in events(app)] == [
        "http://localhost/before", "http://localhost/during", "http://localhost/after"]
    assert len({e.visitor_id for e in events(app)}) == 1


def test_plugin_disabled_means_no_script_and_no_endpoint(app, client):
    app.extensions["magnet.plugins"].set_enabled("tracking", False)
    assert "t.js" not in public_page(app)
    assert send(client, app).status_code == 404
    assert client.get("/plugins/tracking/static/t.js").status_code == 404
    app.extensions["magnet.plugins"].set_enabled("tracking", True)
    assert send(client, app).status_code == 204


def _identified(email, visitor_id):
    """A new contact this browser turns out to be (inside an app context); and how many of
    its earlier events joined them."""
    with write() as session:
        contact = Contact(email=email, custom={}, consent_proof={}, first_touch={},
                          last_touch={})
        session.add(contact)
        session.flush()
        return contact, identity.identify(visitor_id, contact.id)


@pytest.mark.both_backends
def test_identity_joins_anonymous_history_and_sets_touches(app, client):
    send(client, app, url="http://localhost/?utm_source=newsletter&utm_medium=email"
         "&utm_campaign=launch")
    send(client, app, "download", url="http://localhost/guide",
         h="http://localhost/assets/guide.pdf")
    drain(app)
    visitor_id = events(app)[0].visitor_id
    with app.app_context():
        contact, joined = _identified("ada@example.com", visitor_id)
        assert joined == 2
        contact_id = contact.id
        from plugins.tracking import on_form_submitted
        on_form_submitted(submission=None, contact=contact)
        touches = db.session.get(Contact, contact_id, populate_existing=True)
        assert touches.first_touch["campaign"] == "launch"
        assert touches.first_touch["channel"] == "Email"
        assert touches.first_touch["landing_page"].startswith("http://localhost/?utm_source")
    send(client, app, "click", url="http://localhost/guide", h="https://example.org/", x="More")
    drain(app)
    assert [(e.type, e.contact_id) for e in events(app) if e.type in clean.EVENT_TYPES] == [
        ("page_view", contact_id), ("download", contact_id), ("click", contact_id)]


@pytest.mark.both_backends
def test_hook_on_contact_erased(app, client):
    """Erasing a person takes their touches and their browsers' visits with it."""
    from sqlalchemy import func

    from engine.contacts import gdpr
    from plugins.tracking import on_form_submitted
    from plugins.tracking.models import DailyTotals as Daily
    from plugins.tracking.models import Seen
    send(client, app, url="http://localhost/?utm_source=newsletter&utm_campaign=launch")
    send(app.test_client(), app, url="http://localhost/pricing")  # someone else
    drain(app)
    visitor_id = events(app)[0].visitor_id
    with app.app_context():
        contact, _ = _identified("ada@example.com", visitor_id)
        on_form_submitted(submission=None, contact=contact)
        assert db.session.get(Contact, contact.id, populate_existing=True).first_touch[
            "landing_page"]
        days_before = db.session.scalar(select(func.count()).select_from(Daily))
        seen_before = db.session.scalar(select(func.count()).select_from(Seen))
        assert db.session.scalar(select(func.count()).select_from(Seen).where(
            Seen.subject == visitor_id)) > 0
        gdpr.erase_contact(contact.id, actor="owner")
        kept = db.session.get(Contact, contact.id, populate_existing=True)
        assert kept.first_touch == {"channel": "Email", "source": "newsletter",
                                    "medium": "(not set)", "campaign": "launch"}
        left = list(db.session.scalars(select(Visit.visitor_id)))
        assert visitor_id not in left and len(left) == 1  # the other visitor's visit stays
        assert db.session.scalar(select(func.count()).select_from(Daily)) == days_before
        assert db.session.scalar(select(func.count()).select_from(Seen)) == seen_before
        assert db.session.scalar(select(func.count()).select_from(Seen).where(
            Seen.subject == visitor_id)) == 0  # counted still, named no more


def test_malformed_queued_items_are_dropped_without_holding_up_the_rest(app, client):
    from engine.jobs import connection
    from plugins.tracking import buffer
    send(client, app)
    with app.app_context():
        connection().rpush(buffer.QUEUE_KEY, b"{not json", json.dumps({"t": "page_view"}),
                           json.dumps([1]), json.dumps({"t": "page_view", "u": "x", "ts": "?"}))
    send(client, app, url="http://localhost/after")
    assert drain(app) == 6
    assert [e.url for e in events(app)] == ["http://localhost/", "http://localhost/after"]
    with app.app_context():
        assert buffer.pending() == 0
