"""Engine-wide response headers and the favicon: every page, cached ones included."""
from __future__ import annotations

import re

import pytest

from tests.content_helpers import load_demo
from tests.forms_support import forms_site


def _protected(response, referrer: str = "strict-origin-when-cross-origin") -> None:
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self';" in policy
    assert "'unsafe-inline'" not in policy.split("style-src-attr")[0]  # no inline script/style
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == referrer


def _without_form_tokens(page: bytes) -> bytes:
    return re.sub(rb'name="_token" value="[^"]*"', b"", page)


@pytest.mark.both_backends
def test_public_pages_forms_and_the_admin_cannot_be_framed_cached_pages_too(make_app):
    app = forms_site(make_app)
    load_demo(app)
    client = app.test_client()
    first, second = client.get("/"), client.get("/")
    assert (first.headers["X-Magnet-Cache"], second.headers["X-Magnet-Cache"]) == ("miss", "hit")
    # the home page holds a form: each response gets a token of its own, the rest is the cache's
    assert _without_form_tokens(first.get_data()) == _without_form_tokens(second.get_data())
    blog = client.get("/blog")
    not_modified = client.get("/blog", headers={"If-None-Match": blog.get_etag()[0]})
    assert not_modified.status_code == 304
    for response in (first, second, blog, not_modified, client.get("/forms/newsletter"),
                     client.get("/forms/newsletter/thanks"), client.get("/no-such-page")):
        _protected(response)
    _protected(client.get("/auth/login"), referrer="same-origin")  # the admin's own, stricter
    _protected(client.get("/admin/"), referrer="same-origin")


def test_the_policy_is_a_setting(make_app):
    app = make_app(CONTENT_SECURITY_POLICY="default-src 'self' https://cdn.example")
    assert app.test_client().get("/").headers["Content-Security-Policy"] == \
        "default-src 'self' https://cdn.example"
    assert "Content-Security-Policy" not in \
        make_app(CONTENT_SECURITY_POLICY="").test_client().get("/").headers


def test_the_favicon_is_served_and_linked(app):
    load_demo(app)
    client = app.test_client()
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype == "image/vnd.microsoft.icon"
    assert icon.get_data()[:4] == b"\x00\x00\x01\x00"  # an ICO file
    for path in ("/", "/blog", "/auth/login"):
        assert '<link rel="icon" href="/favicon.ico"' in client.get(path).get_data(as_text=True)
