"""The shared page cache never serves one context's page to another, and costs no render for
requests that only look different (a forged Host, a cookie merely named "session").

Each test sends two requests in a row with different contexts and compares what the second
one gets.
"""
from __future__ import annotations

import re
import time

import pytest

from tests.content_helpers import load_demo
from tests.forms_support import forms_site

TOKEN = re.compile(r'name="_token" value="([^"]+)"')


def _preview_query(app, theme: str = "editorial", path: str = "/") -> str:
    from engine.themes import preview
    with app.test_request_context():
        return preview.link(theme, path)


def _renders(app) -> list[str]:
    """Paths rendered from now on (a miss or a bypass calls the view)."""
    from engine.content import views
    seen: list[str] = []
    original = views.show_item

    def counting(item):
        seen.append(item.path)
        return original(item)
    views.show_item = counting
    app.extensions["test.restore"] = lambda: setattr(views, "show_item", original)
    return seen


@pytest.mark.both_backends
def test_a_theme_preview_is_never_stored_for_visitors(app):
    load_demo(app)
    owner = app.test_client()
    previewed = owner.get(_preview_query(app))
    assert previewed.headers["Cache-Control"] == "private, no-store"
    assert "magnet-theme-preview" in previewed.get_data(as_text=True)
    owner.get("/")  # the preview cookie alone, as after signing out
    visitor = app.test_client().get("/")
    body = visitor.get_data(as_text=True)
    assert "magnet-theme-preview" not in body and "/themes/editorial/" not in body
    assert visitor.headers["X-Magnet-Cache"] == "miss"  # the previews stored nothing


def test_with_site_url_set_other_hosts_cost_no_render(make_app):
    app = make_app(SITE_URL="https://www.example.com")
    load_demo(app)
    client = app.test_client()
    assert client.get("/").headers["X-Magnet-Cache"] == "miss"
    rendered = _renders(app)
    try:
        for n in range(20):
            response = client.get("/", headers={"Host": f"forged{n}.example"})
            assert response.headers["X-Magnet-Cache"] == "hit"
            assert b"forged" not in response.data
    finally:
        app.extensions["test.restore"]()
    assert rendered == []


def test_a_cookie_named_session_is_not_a_signed_in_editor(app):
    load_demo(app)
    client = app.test_client()
    client.get("/")
    rendered = _renders(app)
    try:
        for value in ("x", "eyJfdXNlcl9pZCI6IjEifQ.forged.sig"):
            client.set_cookie("session", value)
            assert client.get("/").headers["X-Magnet-Cache"] == "hit"
        client.set_cookie("remember_token", "1|forged")
        assert client.get("/").headers["X-Magnet-Cache"] == "hit"
    finally:
        app.extensions["test.restore"]()
    assert rendered == []


def _page_with_form(app) -> str:
    """The demo's e-book landing page, which places the e-book form (in its form section)."""
    with app.app_context():
        from sqlalchemy import select

        from engine.content import sections
        from engine.content.models import ContentItem
        from engine.db import db
        return next(item.path for item in db.session.scalars(select(ContentItem))
                    if any(s.get("form") == "ebook" for s in sections.page_sections(item)))


def test_cached_pages_hand_each_visitor_a_fresh_single_use_token(make_app):
    from engine.forms import security
    app = forms_site(make_app, FORM_MIN_FILL_SECONDS=2, FORM_TOKEN_MAX_AGE=3600)
    load_demo(app)
    path = _page_with_form(app)
    first = app.test_client().get(path)
    second = app.test_client().get(path)
    assert second.headers["X-Magnet-Cache"] == "hit" and "ETag" not in second.headers
    tokens = [TOKEN.search(r.get_data(as_text=True)).group(1) for r in (first, second)]
    assert tokens[0] != tokens[1]
    with app.test_request_context():
        assert security.check_form_token(tokens[1], "ebook")[1] < 1  # dated when served
    data = {"email": "a@example.com", "first_name": "A", "company_size": "2-10",
            "role": "owner", "consent": "y"}
    quick = app.test_client().post("/forms/ebook", data={"_token": tokens[1], **data})
    assert quick.status_code == 400 and "very quick" in quick.get_data(as_text=True)


def test_a_token_of_a_cached_page_stores_one_submission(make_app, monkeypatch):
    app = forms_site(make_app, FORM_MIN_FILL_SECONDS=0)
    load_demo(app)
    path = _page_with_form(app)
    app.test_client().get(path)
    token = TOKEN.search(app.test_client().get(path).get_data(as_text=True)).group(1)
    answers = []
    for n in range(3):
        data = {"_token": token, "email": f"p{n}@example.com", "first_name": "P",
                "company_size": "2-10", "role": "owner", "consent": "y"}
        answers.append(app.test_client().post("/forms/ebook", data=data).status_code)
    assert answers == [303, 400, 400]


def test_an_old_cached_page_still_hands_out_a_valid_token(make_app, monkeypatch):
    """A quiet site: the page was cached long ago, longer than a token lives."""
    app = forms_site(make_app, FORM_MIN_FILL_SECONDS=0, FORM_TOKEN_MAX_AGE=60)
    load_demo(app)
    path = _page_with_form(app)
    app.test_client().get(path)  # cached now
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)  # itsdangerous dates tokens with time.time
    token = TOKEN.search(app.test_client().get(path).get_data(as_text=True)).group(1)
    data = {"_token": token, "email": "late@example.com", "first_name": "L",
            "company_size": "2-10", "role": "owner", "consent": "y"}
    assert app.test_client().post("/forms/ebook", data=data).status_code == 303
