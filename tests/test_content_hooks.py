"""The hooks content calls, each exercised by a small plugin written for the test."""
from __future__ import annotations

from datetime import timedelta

import pytest

from engine.content import service
from engine.db import utcnow
from tests.content_helpers import post

PROBE = '''
from engine.plugins import hookimpl

DEFAULT_ENABLED = True
PUBLISHED = []


@hookimpl
def on_content_published(item):
    PUBLISHED.append(item.slug)


@hookimpl
def filter_page_html(html, item, request):
    return html.replace("Some text.", "Filtered text.") + '<p class="signature">signed</p>'


@hookimpl
def filter_page_variant(variant, request):
    return variant + "|segment=" + request.cookies.get("segment", "")


@hookimpl
def filter_section(html, name, item, request):
    if name in item.fields.get("probe", ()):
        return '<p class="probe-section">%s of %s, by the probe</p>' % (name, item.slug)
    return html


@hookimpl
def register_shortcodes():
    def greet(args, context):
        return '<strong class="greet">Hello %s on %s</strong>' % (args.get("0", "you"),
                                                                 context["item"].slug)
    return {"greet": greet}


@hookimpl
def tpl_head(request):
    return '<meta name="probe-head" content="%s">' % request.path


@hookimpl
def tpl_body_end(request):
    return '<p id="probe-body-end">end of body</p>'


@hookimpl
def tpl_after_content(item, request):
    return '<p id="probe-after">after %s for %s</p>' % (item.slug,
                                                        request.cookies.get("segment", "anyone"))
'''


@pytest.fixture
def probe_app(make_app, make_plugins):
    # A fresh database: the shared template holds the migrations of the bundled plugins, which
    # this plugins folder does not have.
    return make_app(fresh_db=True, PLUGINS_PATH=str(make_plugins(probe=PROBE)))


def _probe(app):
    return app.extensions["magnet.plugins"].infos["probe"].module


def test_hook_on_content_published(probe_app):
    post(probe_app, "Now")
    draft = post(probe_app, "Later", status="draft")
    post(probe_app, "Scheduled", published_at=utcnow() + timedelta(hours=1))
    assert _probe(probe_app).PUBLISHED == ["now"]
    with probe_app.app_context():
        service.publish(draft.id)
        assert _probe(probe_app).PUBLISHED == ["now", "later"]
        service.publish(draft.id)  # already visible: not announced again
        assert service.publish_due(utcnow() + timedelta(hours=2)) != []
    assert _probe(probe_app).PUBLISHED == ["now", "later", "scheduled"]


def test_hook_filter_page_html(probe_app):
    item = post(probe_app, "Filtered", body="Some text.")
    html = probe_app.test_client().get(item.path).get_data(as_text=True)
    assert "Filtered text." in html and '<p class="signature">signed</p>' in html
    assert "Some text." not in html


def test_hook_filter_page_variant(probe_app):
    item = post(probe_app, "Variants")
    client = probe_app.test_client()
    client.set_cookie("segment", "a")
    first = client.get(item.path)
    assert "for a</p>" in first.get_data(as_text=True)
    assert first.headers["X-Magnet-Cache"] == "miss"
    client.set_cookie("segment", "b")
    second = client.get(item.path)  # another variant: its own cache entry, not a's page
    assert "for b</p>" in second.get_data(as_text=True)
    assert second.headers["X-Magnet-Cache"] == "miss"
    client.set_cookie("segment", "a")
    again = client.get(item.path)
    assert again.headers["X-Magnet-Cache"] == "hit" and "for a</p>" in again.get_data(as_text=True)


def test_hook_filter_section(probe_app):
    from engine.content import service as content
    with probe_app.app_context():
        for slug, probe in (("plain", []), ("replaced", ["hero", "form"])):
            content.create_item("page", slug.title(), slug=slug, status="published",
                                template="landing", body="The body text.",
                                fields={"headline": "Theme headline", "probe": probe})
    client = probe_app.test_client()
    plain = client.get("/plain").get_data(as_text=True)
    assert "Theme headline" in plain and "The body text." in plain
    assert 'aria-labelledby="hero-heading"' in plain and "probe-section" not in plain
    replaced = client.get("/replaced").get_data(as_text=True)
    assert '<p class="probe-section">hero of replaced, by the probe</p>' in replaced
    assert '<p class="probe-section">form of replaced, by the probe</p>' in replaced
    assert "Theme headline" not in replaced and "<p>The body text." not in replaced
    assert 'aria-labelledby="hero-heading"' not in replaced  # no such heading any more
    assert '<section class="hero">' in replaced  # the theme's section keeps its look


def test_hook_register_shortcodes(probe_app):
    item = post(probe_app, "Greeting", body="[greet Ada]\n\nAnd [greet] inline.")
    html = probe_app.test_client().get(item.path).get_data(as_text=True)
    assert '<strong class="greet">Hello Ada on greeting</strong>' in html
    assert '<strong class="greet">Hello you on greeting</strong> inline.' in html
    probe_app.extensions["magnet.plugins"].set_enabled("probe", False)
    with probe_app.app_context():
        from engine.content import cache
        from engine.db import write
        with write():
            cache.invalidate()
    html = probe_app.test_client().get(item.path).get_data(as_text=True)
    assert "unknown shortcode “greet”" in html  # a disabled plugin's shortcode: a hint, no error


def test_hook_tpl_head(probe_app):
    item = post(probe_app, "Head")
    html = probe_app.test_client().get(item.path).get_data(as_text=True)
    head = html.split("</head>")[0]
    assert '<meta name="probe-head" content="/blog/head">' in head


def test_hook_tpl_body_end(probe_app):
    item = post(probe_app, "Body end")
    html = probe_app.test_client().get(item.path).get_data(as_text=True)
    assert html.rstrip().endswith('<p id="probe-body-end">end of body</p>\n</body>\n</html>')


def test_hook_tpl_after_content(probe_app):
    from tests.content_helpers import load_demo
    load_demo(probe_app)
    client = probe_app.test_client()
    for path, slug in (("/blog/landing-page-fixes", "landing-page-fixes"), ("/", "home"),
                       ("/pricing", "pricing")):
        html = client.get(path).get_data(as_text=True)
        assert f'<p id="probe-after">after {slug} for anyone</p>' in html, path
