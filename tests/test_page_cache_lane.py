"""The page cache's lane (`engine.content.lane`) answers cached pages ahead of Flask's routing
and dispatch: every response must be the one Flask gives (status, every header and cookie but
`Date`, body), and editors and theme previews must never get one."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from engine.content import lane as lane_module
from tests.admin_helpers import signed_in
from tests.content_helpers import load_demo
from tests.forms_support import forms_site
from tests.lane_support import Request, assert_same, lane_of, one_pass, through_both


def _site(make_app):
    app = forms_site(make_app)
    load_demo(app)
    return app


def _paths(app) -> tuple[str, str]:
    """(a blog post's path, the path of a page placing a form)."""
    from sqlalchemy import select

    from engine.content import sections
    from engine.content.models import ContentItem
    from engine.db import db
    with app.app_context():
        items = list(db.session.scalars(select(ContentItem)))
        post = next(i.path for i in items if i.kind == "post" and i.status == "published")
        form = next(i.path for i in items
                    if any(s.get("form") == "ebook" for s in sections.page_sections(i)))
    return post, form


def test_anonymous_pages_are_the_same_through_the_lane(make_app):
    app = _site(make_app)
    post, form = _paths(app)
    client = app.test_client()
    client.get(post)
    etag = client.get(post).headers["ETag"]
    requests = [
        Request("/"), Request(post), Request(form), Request(form), Request("/", "HEAD"),
        Request(post, headers=(("If-None-Match", etag),)),
        Request(post, headers=(("If-None-Match", '"other"'),)),
        Request("/?utm_source=linkedin&utm_campaign=spring"),
        Request("/", headers=(("Cookie", "magnet_consent=yes"), ("Referer", "https://t.co/x"))),
        Request("/blog"), Request("/feed.xml"), Request("/sitemap.xml"),
        Request("/no-such-page"), Request("/blog/no-such-post"),
        Request("/", headers=(("Host", "other.example"),)),
    ]
    by_flask, by_lane, answered = through_both(app, requests)
    assert_same(by_flask, by_lane, requests)
    # every cached page was answered by the lane; the 404s went through Flask
    assert answered == [True] * 12 + [False, False, True]
    statuses = [s.status for s in by_lane]
    assert statuses[4:7] == [200, 304, 200] and statuses[12:14] == [404, 404]
    assert by_lane[4].body == "" and by_lane[5].body == ""
    assert dict(by_lane[0].headers)["X-Magnet-Cache"] == "hit"
    # a page with a form: a fresh token in each response, the lane's as Flask's
    tokens = [by_flask[2].tokens, by_flask[3].tokens, by_lane[2].tokens, by_lane[3].tokens]
    assert all(tokens) and len({t for group in tokens for t in group}) == 4 * len(tokens[0])


def test_security_headers_come_with_every_lane_answer(make_app):
    app = _site(make_app)
    app.config["CONTENT_SECURITY_POLICY"] = "default-src 'self'"
    requests = [Request("/"), Request("/", "HEAD")]
    by_flask, by_lane, answered = through_both(app, requests)
    assert_same(by_flask, by_lane, requests)
    assert answered == [True, True]
    headers = dict(by_lane[0].headers)
    assert headers["Content-Security-Policy"] == "default-src 'self'"
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_a_signed_in_editor_never_gets_a_lane_answer(make_app):
    app = _site(make_app)
    editor = signed_in(app, "editor")
    session = editor.get_cookie("session").value
    requests = [Request("/", headers=(("Cookie", f"session={session}"),)),
                Request("/", headers=(("Cookie", "session=forged"),)),
                Request("/", headers=(("Cookie", "remember_token=1|forged"),)),
                Request("/", headers=(("Cookie", f"magnet_sc=x; session={session}"),))]
    by_flask, by_lane, answered = through_both(app, requests)
    assert_same(by_flask, by_lane, requests)
    assert answered == [False] * 4
    editor_view = dict(by_lane[0].headers)
    assert "X-Magnet-Cache" not in editor_view  # bypassed the cache altogether
    assert dict(by_lane[1].headers)["X-Magnet-Cache"] == "hit"  # Flask: a forged one is no one


def test_a_theme_preview_never_gets_a_lane_answer(make_app):
    from engine.themes import preview
    app = _site(make_app)
    with app.test_request_context():
        link = preview.link("editorial", "/")
    token = parse_qs(urlsplit(link).query)["sig"][0]
    requests = [Request(link), Request("/", headers=(("Cookie", f"{preview.COOKIE}={token}"),)),
                Request("/?preview_theme=editorial&sig=forged")]
    by_flask, by_lane, answered = through_both(app, requests)
    assert_same(by_flask, by_lane, requests)
    assert answered == [False] * 3
    for previewing in by_lane[:2]:
        assert "magnet-theme-preview" in previewing.body
        assert dict(previewing.headers)["Cache-Control"] == "private, no-store"
    # and the visitors after it are served the live site, by the lane
    visitor, answered = one_pass(app, [Request("/")], lane=True)
    assert answered == [True] and "magnet-theme-preview" not in visitor[0].body


def test_the_lane_learns_only_paths_of_stored_pages(make_app):
    app = _site(make_app)
    client = app.test_client()
    for n in range(5):
        client.get(f"/random-{n}")
        client.get(f"/blog/random-{n}")
    client.get("/")
    routes = app.extensions["magnet.page_cache"].routes
    assert set(routes) == {("GET", "/")}
    assert lane_of(app).answered == 0
    client.get("/")
    client.post("/")
    assert lane_of(app).answered == 1
    assert isinstance(lane_of(app), lane_module.HitLane)


def test_url_for_works_in_the_lane(make_app):
    """The lane binds the URL adapter only when something builds a URL: an `after_request`
    function that does gets the same URL as through Flask."""
    from flask import request, url_for
    app = make_app()

    def blog_link(response):
        response.headers["X-Blog"] = url_for("content.blog", _external=True)
        response.headers["X-Endpoint"] = f"{request.endpoint} {request.view_args}"
        return response
    app.after_request(blog_link)
    load_demo(app)
    post, _form = _paths(app)
    requests = [Request("/"), Request(post), Request(post, headers=(("Host", "b.example"),))]
    by_flask, by_lane, answered = through_both(app, requests)
    assert_same(by_flask, by_lane, requests)
    assert answered == [True, True, True]
    assert dict(by_lane[2].headers)["X-Blog"] == "http://b.example/blog"
    assert dict(by_lane[1].headers)["X-Endpoint"].startswith("content.post {'slug': ")
