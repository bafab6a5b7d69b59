"""Typing someone's address into a form must not make a browser that person.

Every submission joins the browser's activity to the contact, but only a trusted browser (it
gave the address first, or opened a link sent to it) gets the known visitor's experience:
prefilled values, skipped questions, a greeting, submitting without the address, and its
answers replacing what is known.
"""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from engine.contacts.models import Contact, Subscription, Visitor
from engine.db import db, write
from tests.forms_support import EBOOK, forms_site, post

pytestmark = pytest.mark.both_backends

VICTORIA = {"email": "victoria@example.com", "first_name": "Victoria", "last_name": "Vance",
            "phone": "+44 20 7946 0000", "consent": "y"}


def fields(client, slug="webinar"):
    return client.get(f"/forms/{slug}/fields").get_data(as_text=True)


def test_someone_typing_a_known_address_learns_nothing_and_changes_nothing(make_app):
    app = forms_site(make_app)
    victim, attacker = app.test_client(), app.test_client()
    assert post(victim, "webinar", VICTORIA).status_code == 303
    assert "Welcome back, Victoria" in fields(victim)  # she gave the address first

    assert post(attacker, "newsletter", {"email": "victoria@example.com",
                                         "first_name": "Mallory"}).status_code == 303
    html = fields(attacker)
    assert "Victoria" not in html and "Welcome back" not in html
    assert 'name="email"' in html and 'name="phone"' in html  # asked everything again
    answer = post(attacker, "ebook", {k: v for k, v in EBOOK.items() if k != "email"})
    assert answer.status_code == 400 and "email" in answer.get_data(as_text=True).lower()

    assert post(attacker, "ebook", {**EBOOK, "email": "victoria@example.com"}).status_code == 303
    with app.app_context():
        contact = db.session.scalar(select(Contact))
        assert contact.first_name == "Victoria"  # known values are not replaced
        assert contact.consent_proof["form"] == "webinar"  # nor the proof of her consent
        links = dict(db.session.execute(select(Visitor.id, Visitor.trust)).all())
    # Both browsers' activity joins her timeline, but neither is trusted any more: which of the
    # two is Victoria cannot be told, so she too is asked for her address next time.
    assert len(links) == 2 and set(links.values()) == {0}
    assert "Welcome back" not in fields(victim)


def test_opening_the_confirmation_link_makes_the_browser_trusted(make_app, smtp_server, work):
    app = forms_site(make_app, **smtp_server.config)
    victim, attacker = app.test_client(), app.test_client()
    assert post(victim, "webinar", VICTORIA).status_code == 303
    assert post(attacker, "newsletter", {"email": "victoria@example.com"}).status_code == 303
    work(app)
    body = smtp_server.messages[-1].get_body(("html",)).get_content()
    link = re.search(r'href="http://localhost(/forms/confirm/[^"]+)"', body).group(1)
    assert victim.post(link).status_code == 200  # she opens the email sent to her
    assert "Welcome back, Victoria" in fields(victim)
    assert "Welcome back" not in fields(attacker)
    # Trusted again, she can send a form without typing her address.
    assert post(victim, "ebook",
                {k: v for k, v in EBOOK.items() if k != "email"}).status_code == 303
    with app.app_context():
        [contact] = db.session.scalars(select(Contact))
        assert (contact.email, contact.first_name) == ("victoria@example.com", "Victoria")


def test_an_unsubscribed_person_is_only_put_back_by_their_own_confirmation(make_app,
                                                                          smtp_server, work):
    app = forms_site(make_app, **smtp_server.config)
    client = app.test_client()
    assert post(client, "ebook", EBOOK).status_code == 303  # a list without double opt-in
    with app.app_context(), write():
        sub = db.session.scalar(select(Subscription))
        assert sub.status == "subscribed"
        sub.status = "unsubscribed"
    for _ in range(2):  # however often the address is typed in again
        assert post(app.test_client(), "ebook", EBOOK).status_code == 303
        with app.app_context():
            assert db.session.scalar(select(Subscription.status)) == "pending"
    work(app)
    assert any("/forms/confirm/" in m.get_body(("html",)).get_content()
               for m in smtp_server.messages)


def test_the_visitor_cookie_is_secure_over_https(make_app):
    """A trusted browser's cookie lets it act as its contact: never sent over plain HTTP
    once the site is served over HTTPS."""
    app = forms_site(make_app)
    secure = post(app.test_client(), "ebook", EBOOK, base_url="https://localhost")
    plain = post(app.test_client(), "ebook", {**EBOOK, "email": "b@example.com"})
    assert "magnet_vid=" in secure.headers["Set-Cookie"]
    assert "Secure" in secure.headers["Set-Cookie"]
    assert "Secure" not in plain.headers["Set-Cookie"]


def test_a_confirmation_opened_anywhere_proves_and_other_pages_cannot_post_it(make_app,
                                                                             smtp_server, work):
    app = forms_site(make_app, **smtp_server.config)
    typist, phone = app.test_client(), app.test_client()
    assert post(typist, "newsletter", {"email": "victoria@example.com"}).status_code == 303
    assert "Welcome back" in fields(typist)  # it gave the address first
    work(app)
    body = smtp_server.messages[-1].get_body(("html",)).get_content()
    link = re.search(r'href="http://localhost(/forms/confirm/[^"]+)"', body).group(1)
    forged = phone.post(link, headers={"Origin": "https://elsewhere.example"})
    assert forged.status_code == 403 and phone.get_cookie("magnet_vid") is None
    assert phone.post(link).status_code == 200  # a mail app's browser, no cookie yet
    assert phone.get_cookie("magnet_vid") is not None
    with app.app_context():
        trust = dict(db.session.execute(select(Visitor.id, Visitor.trust)).all())
    assert sorted(trust.values()) == [0, 2]  # the typist's first claim ended
    assert "Welcome back" not in fields(typist)
    laptop = app.test_client()
    assert laptop.post(link).status_code == 200  # a second click, already confirmed
    assert "Welcome back" in fields(laptop, "webinar")
