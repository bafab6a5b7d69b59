"""Open and click tracking: links rewritten with UTM tags, the pixel, no open redirect, and
machine opens and clicks recorded as such without counting as engagement."""
from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from sqlalchemy import select

from engine.db import db, utcnow, write
from engine.events.models import Activity
from engine.mail import tokens
from engine.mail.models import Mailing, MailSend
from engine.mail.tracking import Links, track
from engine.mail.views.tracking import GIF

BROWSER = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/17.0 Safari/605.1.15")
HTML = ('<html><body><p><a href="https://shop.example/a?x=1&amp;y=2#top">Shop</a> '
        "<a class='b' href='https://shop.example/b?utm_source=hand'>Tagged</a> "
        '<a href="mailto:help@example.com">Mail</a> <a href="#top">Top</a> '
        '<a data-href="https://no.example" href="tel:+441234">Call</a> '
        '<a href="http://localhost/email/unsubscribe/abc">Unsubscribe</a></p></BODY></html>')


def _send(app, **mailing) -> tuple[int, int]:
    from engine.contacts.service import upsert
    with app.app_context(), write():
        contact = upsert("jane@example.com")[0]
        row = Mailing(key="newsletter:1", **mailing)
        db.session.add(row)
        db.session.flush()
        send = MailSend(mailing_id=row.id, contact_id=contact.id, status="sent",
                        email="jane@example.com", sent_at=utcnow() - timedelta(hours=1))
        db.session.add(send)
        db.session.flush()
        return send.id, contact.id


def _events(app, kind: str) -> list[dict]:
    with app.app_context():
        return [a.properties for a in db.session.scalars(
            select(Activity).where(Activity.type == kind).order_by(Activity.id))]


def _row(app, send_id: int) -> MailSend:
    with app.app_context():
        return db.session.get(MailSend, send_id)


def _hrefs(html: str) -> list[str]:
    return [unescape(h) for h in re.findall(r'<a [^>]*?(?<![\w-])href="([^"]*)"', html)]


def test_links_are_wrapped_tagged_and_readable(app):
    utm = {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "May"}
    send_id, _ = _send(app, utm=utm)
    with app.test_request_context():
        mailing = db.session.scalar(select(Mailing))
        html = track(HTML, send_id=send_id, mailing=mailing)
        hrefs = _hrefs(html)
        clicks = [tokens.read_click_token(h.rsplit("/", 1)[1]) for h in hrefs
                  if h.startswith("http://localhost/email/c/")]
        opened = re.search(r'<img src="http://localhost/email/o/([^"]+)"', html)
        assert opened and tokens.read_open_token(opened[1]) == send_id
        mailing.track_clicks = mailing.track_opens = False
        plain = track(HTML, send_id=send_id, mailing=mailing)
        odd = "https://x.example/é?q=“a”&b=\\\"</a>"  # the fast token, read by tokens.py
        made = Links(send_id, None).click(odd).rsplit("/", 1)[1]
        assert tokens.read_click_token(made) == (send_id, odd)
    urls = [url for _, url in clicks]
    assert {sid for sid, _ in clicks} == {send_id}
    assert urls[0] == ("https://shop.example/a?x=1&y=2&utm_source=newsletter&utm_medium=email"
                       "&utm_campaign=May#top")
    assert urls[1] == "https://shop.example/b?utm_source=hand"  # tagged by hand: left alone
    assert urls[2] == "http://localhost/#magnet-hp" and len(urls) == 3  # the hidden honeypot
    for kept in ("mailto:help@example.com", "#top", "tel:+441234",
                 "http://localhost/email/unsubscribe/abc"):
        assert kept in hrefs
    assert html.index("<img") < html.index("</BODY>")
    assert "/email/c/" not in plain and "/email/o/" not in plain
    assert "https://shop.example/a?x=1&amp;y=2&amp;utm_source=newsletter" in plain


def test_track_is_fast(app):
    """About 100 µs for a newsletter with ten links (a bound generous for a loaded machine)."""
    import time
    html = "<html><body>" + "".join(
        f'<p>Paragraph {i} <a href="https://example.com/post/{i}?ref=mail">link {i}</a></p>'
        for i in range(10)) + "</body></html>"
    send_id, _ = _send(app, utm={"utm_source": "newsletter"})
    with app.app_context():
        mailing = db.session.scalar(select(Mailing))
        start = time.perf_counter()
        for n in range(200):
            track(html, send_id=send_id + n, mailing=mailing)
        per_call = (time.perf_counter() - start) / 200
    assert per_call < 0.001, per_call


def test_click_redirects_only_to_the_signed_url(app, client):
    send_id, contact_id = _send(app)
    with app.app_context():
        url = tokens.click_url(send_id, "https://shop.example/a")
        javascript = tokens.click_url(send_id, "javascript:alert(1)")
    response = client.get(url.removeprefix("http://localhost"), headers={"User-Agent": BROWSER})
    assert response.status_code == 302 and response.location == "https://shop.example/a"
    row = _row(app, send_id)
    assert row.clicked_at is not None and row.opened_at is not None  # a click is an open
    assert _events(app, "email_clicked") == [{"mailing": "newsletter:1", "mailing_id": 1,
                                              "url": "https://shop.example/a",
                                              "machine": False}]
    token = url.rsplit("/", 1)[1]
    payload, rest = token.split(".", 1)
    import base64
    import json
    forged = base64.urlsafe_b64encode(json.dumps([send_id, "https://evil.example"]).encode())
    for bad in (forged.decode().rstrip("=") + "." + rest, token[:-2] + "xx", "nonsense"):
        response = client.get(f"/email/c/{bad}", headers={"User-Agent": BROWSER})
        assert response.status_code == 404 and "Location" not in response.headers
    assert client.get(javascript.removeprefix("http://localhost")).status_code == 400
    assert len(_events(app, "email_clicked")) == 1


def test_the_pixel_is_always_a_gif_and_only_human_opens_count(app, client):
    send_id, _ = _send(app, subject="Welcome")
    with app.app_context():
        path = tokens.open_url(send_id).removeprefix("http://localhost")
    bad = client.get("/email/o/123.forged.gif")
    assert bad.status_code == 200 and bad.data == GIF and len(GIF) == 43
    apple = client.get(path, headers={"User-Agent": "Mozilla/5.0"})  # Apple's MPP proxy
    assert apple.data == GIF and "no-store" in apple.headers["Cache-Control"]
    assert apple.mimetype == "image/gif"
    assert _row(app, send_id).opened_at is None
    client.get(path, headers={"User-Agent": "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko "
                                            "Firefox/11.0 (via ggpht.com GoogleImageProxy)"})
    first = _row(app, send_id).opened_at
    assert first is not None  # Gmail's proxy fetches when the reader opens: a person
    client.get(path, headers={"User-Agent": BROWSER})
    assert _row(app, send_id).opened_at == first  # the first human open is kept
    assert [e["machine"] for e in _events(app, "email_opened")] == [True, False, False]
    assert {e["subject"] for e in _events(app, "email_opened")} == {"Welcome"}  # for people


@pytest.mark.parametrize("how", ["scanner", "too_soon", "honeypot", "head"])
def test_machine_clicks_are_recorded_but_not_counted(app, client, how):
    send_id, _ = _send(app)
    agent = BROWSER
    target = "https://shop.example/a"
    if how == "scanner":
        agent = "Mozilla/5.0 (compatible; BingPreview/1.0b)"
    if how == "honeypot":
        target = "http://localhost/#magnet-hp"
    with app.app_context():
        if how == "too_soon":
            with write():
                db.session.get(MailSend, send_id).sent_at = utcnow() - timedelta(seconds=3)
        path = tokens.click_url(send_id, target).removeprefix("http://localhost")
    if how == "head":
        response = client.head(path, headers={"User-Agent": agent})
    else:
        response = client.get(path, headers={"User-Agent": agent})
    assert response.status_code == 302 and response.location == target
    assert _row(app, send_id).clicked_at is None
    assert [e["machine"] for e in _events(app, "email_clicked")] == [True]
