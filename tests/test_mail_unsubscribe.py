"""Unsubscribing as a recipient and a mailbox provider do it: RFC 8058 one-click, the footer
link's page, the preference page, and a new opt-in lifting an old unsubscribe."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.contacts import service as contacts
from engine.contacts import store
from engine.contacts.models import Subscription
from engine.db import db, write
from engine.events.models import Activity
from engine.mail import suppression, tokens
from engine.mail.models import Mailing, MailSend
from engine.testing import deliver_events
from tests.admin_helpers import csrf_token

EMAIL = "jane.doe@example.com"


def _person(app, email=EMAIL, lists=("news", "offers")) -> int:
    with app.app_context(), write():
        contact, _, _ = contacts.upsert(email, {"first_name": "Jane"})
        store.subscribe(contact.id, list(lists))
        return contact.id


def _sent(app, contact_id, list_slug="", key="newsletter:1") -> int:
    with app.app_context(), write() as session:
        mailing = Mailing(key=key, list_slug=list_slug)
        session.add(mailing)
        session.flush()
        send = MailSend(mailing_id=mailing.id, contact_id=contact_id, email=EMAIL, status="sent")
        session.add(send)
        session.flush()
        return send.id


def _path(app, contact_id, send_id=None, page="unsubscribe") -> str:
    with app.app_context():
        url = (tokens.unsubscribe_url if page == "unsubscribe" else tokens.preferences_url)(
            contact_id, send_id)
    return url.removeprefix("http://localhost")


def _lists(app, contact_id) -> dict[str, str]:
    with app.app_context():
        return {s.list_slug: s.status for s in db.session.scalars(
            select(Subscription).where(Subscription.contact_id == contact_id))}


def _unsubscribes(app, contact_id) -> list[dict]:
    with app.app_context():
        return [a.properties for a in db.session.scalars(select(Activity).where(
            Activity.contact_id == contact_id, Activity.type == "email_unsubscribed"))]


def _entry(app, email=EMAIL):
    with app.app_context():
        row = suppression.entry(email)
        return (row.reason, row.scope, row.expires_at) if row else None


def test_one_click_post_without_cookie_leaves_the_mailings_list_and_get_does_not(app):
    contact_id = _person(app)
    path = _path(app, contact_id, _sent(app, contact_id, list_slug="news"))

    page = app.test_client().get(path)  # a link scanner, or the person opening the link
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "no-store" in page.headers["Cache-Control"]
    assert "ja•••@example.com" in html and EMAIL not in html
    assert f'<form method="post" action="{path}">' in html and ">Unsubscribe</button>" in html
    assert "off the list “News”?" in html and "/email/preferences/" in html
    assert _lists(app, contact_id) == {"news": "subscribed", "offers": "subscribed"}

    for _ in range(2):  # a mailbox provider: no cookie, no CSRF token; then its retry
        answer = app.test_client().post(path, data="List-Unsubscribe=One-Click",
                                        content_type="application/x-www-form-urlencoded")
        assert answer.status_code == 200
        assert answer.headers["Cache-Control"].startswith("no-store")
        assert "You are unsubscribed" in answer.get_data(as_text=True)
        assert "set-cookie" not in {k.lower() for k in answer.headers.keys()}
    assert _lists(app, contact_id) == {"news": "unsubscribed", "offers": "subscribed"}
    assert _unsubscribes(app, contact_id) == [
        {"mailing": "newsletter:1", "mailing_id": 1, "list": "news", "how": "one-click"}]
    assert _entry(app) is None  # left one list; the others still get their mail
    again = app.test_client().get(path).get_data(as_text=True)
    assert "already unsubscribed from “News”" in again and "</button>" not in again


def test_without_a_list_the_address_is_suppressed_and_a_forged_link_changes_nothing(app):
    contact_id = _person(app)
    other = _person(app, "other@example.com")
    path = _path(app, contact_id, _sent(app, contact_id))  # sent to a segment: no list
    forged = _path(app, other)[:-3] + "abc"

    refused = app.test_client().post(forged, data={"List-Unsubscribe": "One-Click"})
    assert refused.status_code == 400 and "does not work" in refused.get_data(as_text=True)
    assert app.test_client().get("/email/unsubscribe/nonsense").status_code == 400
    assert _entry(app, "other@example.com") is None
    assert _lists(app, other) == {"news": "subscribed", "offers": "subscribed"}

    assert app.test_client().post(path).status_code == 200  # the page's button
    assert _entry(app)[:2] == ("unsubscribed", "marketing")
    assert _lists(app, contact_id) == {"news": "unsubscribed", "offers": "unsubscribed"}
    assert [e["how"] for e in _unsubscribes(app, contact_id)] == ["link"]
    with app.app_context():  # marketing stops; the transactional mail they ask for does not
        assert suppression.blocked([EMAIL], marketing=True) == {EMAIL}
        assert suppression.blocked([EMAIL], marketing=False) == set()


def _choose(client, path, **form):
    token = csrf_token(client.get(path).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **form})


def test_preference_page_leaves_lists_pauses_unsubscribes_and_resumes(app, clock):
    contact_id = _person(app)
    path = _path(app, contact_id, page="preferences")
    client = app.test_client()
    html = client.get(path).get_data(as_text=True)
    assert 'value="news" checked' in html and 'value="offers" checked' in html
    token = csrf_token(html)

    no_token = app.test_client().post(path, data={"action": "unsubscribe_all"})
    assert no_token.status_code == 400 and _entry(app) is None  # CSRF required

    done = _choose(client, path, action="lists", stay="offers")
    assert done.status_code == 303 and done.headers["Location"].endswith(path)
    assert "You left News." in client.get(path).get_data(as_text=True)
    assert _lists(app, contact_id) == {"news": "unsubscribed", "offers": "subscribed"}
    assert [(e["list"], e["how"]) for e in _unsubscribes(app, contact_id)] == [
        ("news", "preferences")]
    html = client.get(path).get_data(as_text=True)
    assert 'value="news"' not in html and "sign up on our site" in html  # no re-joining here

    _choose(client, path, action="pause")
    reason, scope, until = _entry(app)
    assert (reason, scope) == ("paused", "marketing")
    assert abs((until - clock.now()).total_seconds() - 30 * 86400) < 60
    assert "Resume now" in client.get(path).get_data(as_text=True)
    clock.advance(days=31)
    with app.app_context():
        assert suppression.blocked([EMAIL], marketing=True) == set()  # the pause ended

    _choose(client, path, action="unsubscribe_all")
    assert _entry(app)[:2] == ("unsubscribed", "marketing")
    assert _lists(app, contact_id) == {"news": "unsubscribed", "offers": "unsubscribed"}
    assert "sign up on our site and confirm" in client.get(path).get_data(as_text=True)
    client.post(path, data={"csrf_token": token, "action": "resume"})  # no such button now
    assert _entry(app)[:2] == ("unsubscribed", "marketing")
    with app.app_context(), write():
        suppression.lift(EMAIL)

    with app.app_context(), write():  # a bounce is not the person's to lift
        suppression.suppress(EMAIL, "hard_bounce")
    html = client.get(path).get_data(as_text=True)
    assert "We do not send to this address" in html and "Resume now" not in html
    client.post(path, data={"csrf_token": token, "action": "resume"})  # a forged form
    assert _entry(app)[0] == "hard_bounce"


def test_a_new_opt_in_lifts_an_unsubscribe_made_before_it_never_a_bounce(app):
    jane = _person(app, lists=())
    bob = _person(app, "bob@example.com", lists=())
    with app.app_context(), write():
        suppression.suppress(EMAIL, "unsubscribed")
        suppression.suppress("bob@example.com", "hard_bounce")
        for contact_id in (jane, bob):
            contacts.confirm_subscription(
                store.subscribe(contact_id, ["news"], double_opt_in=True)[0][0])
    deliver_events(app)
    assert _entry(app) is None
    assert _entry(app, "bob@example.com")[0] == "hard_bounce"

    with app.app_context(), write():  # joins, then unsubscribes before the join is delivered
        store.subscribe(jane, ["offers"])
    with app.app_context(), write():
        suppression.suppress(EMAIL, "unsubscribed")
    deliver_events(app)
    assert _entry(app)[0] == "unsubscribed"
    with app.app_context(), write():  # anyone can type an address into a form: no lift
        store.subscribe(jane, ["deals"])
    deliver_events(app)
    assert _entry(app)[0] == "unsubscribed"


@pytest.mark.browser
def test_a_person_unsubscribes_and_pauses_in_a_browser(page, live_server, app):
    refused: list[str] = []  # what the Content-Security-Policy (or anything else) refused
    page.on("console", lambda message: message.type == "error" and refused.append(message.text))
    contact_id = _person(app)
    page.goto(live_server + _path(app, contact_id, _sent(app, contact_id, list_slug="news")))
    page.get_by_role("button", name="Unsubscribe").click()
    page.get_by_role("heading", name="You are unsubscribed").wait_for()
    page.get_by_role("link", name="Manage your email preferences").click()
    page.get_by_role("button", name="Pause all marketing email for 30 days").click()
    page.get_by_text("Paused: no marketing email from us until").wait_for()
    assert _lists(app, contact_id) == {"news": "unsubscribed", "offers": "subscribed"}
    assert _entry(app)[0] == "paused" and refused == []


def test_the_fast_recipient_token_is_itsdangerous_own(app, monkeypatch):
    """`tokens.recipient_token` makes the token `sign("mail.recipient", ...)` makes, which
    `read_recipient_token` reads back; the bounce address's MAC is unchanged too."""
    import hashlib
    import hmac
    import time

    from engine.web.signing import sign
    with app.app_context():
        for contact_id, send_id in ((1, 2), (123456, None), (7, 99999999)):
            moment = time.time()
            monkeypatch.setattr(time, "time", lambda moment=moment: moment)
            token = tokens.recipient_token(contact_id, send_id)
            assert token == sign("mail.recipient", [contact_id, send_id or 0])
            assert tokens.read_recipient_token(token) == (contact_id, send_id)
        key = app.config["SECRET_KEY"]
        key = key.encode() if isinstance(key, str) else key
        mac = hmac.new(key, b"magnet.bounce.s42", hashlib.sha256).hexdigest()[:16]
        assert tokens.bounce_address("s", 42).startswith(f"bounces+s42-{mac}@")
        assert tokens.read_bounce_address(tokens.bounce_address("s", 42)) == ("s", 42)
