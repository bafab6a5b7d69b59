"""Pages and posts as visitors, search engines and feed readers see them."""
from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path
from xml.etree import ElementTree as ET

import feedparser
import pytest

from engine.content import cache, service, sync
from engine.content.views import hierarchy
from engine.db import utcnow
from engine.web import generation
from tests.content_helpers import load_demo, post

SITEMAP_NS = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}


@pytest.mark.both_backends
def test_demo_site_pages_and_navigation(app, client):
    report = load_demo(app)
    assert not report.errors
    home = client.get("/")
    assert home.status_code == 200
    html = home.get_data(as_text=True)
    assert "Emails your customers actually open" in html  # the landing page's hero
    assert "What you will learn" in html and "Priya Raman" in html  # benefits, social proof
    for path in ("/pricing", "/webinar", "/about", "/blog"):
        assert f'href="{path}"' in html, f"{path} missing from the navigation"
        assert client.get(path).status_code == 200
    assert client.get("/thank-you").status_code == 200
    blog = client.get("/blog").get_data(as_text=True)
    posts = re.findall(r'<h3><a href="(/blog/[a-z0-9-]+)">', blog)
    assert len(posts) >= 6
    for path in posts:
        assert client.get(path).status_code == 200


def test_post_page_shows_author_date_tags_reading_time_and_related(app, client):
    load_demo(app)
    html = client.get("/blog/lead-scoring-for-small-teams").get_data(as_text=True)
    assert "By <span class=\"author\">Tom Reiner</span>" in html
    assert '<time datetime="2026-10-06T08:00:00+00:00">6 October 2026</time>' in html
    assert re.search(r"\d+ min read", html)
    assert 'href="/blog/tag/lead-scoring" rel="tag"' in html
    related = html.split('id="related-heading"')[1]
    assert "Email marketing or marketing automation?" in related  # shares "automation"
    assert "Lead scoring for small teams" not in related


def test_template_hierarchy_prefers_the_most_specific_template(make_app, tmp_path):
    import shutil

    from engine.config import DEFAULTS
    themes = tmp_path / "themes"
    shutil.copytree(Path(DEFAULTS["THEMES_PATH"]) / "default", themes / "default")
    plain = themes / "plain" / "templates"
    plain.mkdir(parents=True)
    (plain.parent / "theme.toml").write_text('name = "plain"\nparent = "default"\n')
    (plain / "page-pricing.html").write_text(
        '{% extends "base.html" %}{% block content %}SLUG TEMPLATE{% endblock %}')
    (plain / "page-wide.html").write_text(
        '{% extends "base.html" %}{% block content %}NAMED TEMPLATE{% endblock %}')
    app = make_app(THEMES_PATH=str(themes))
    load_demo(app)
    with app.app_context():
        app.extensions["magnet.themes"].use("plain")
        about = service.get_item("page", "about")
        service.update_item(about.id, template="wide")
        assert hierarchy(about) == ["page-about.html", "page-wide.html", "page.html", "base.html"]
    client = app.test_client()
    assert "SLUG TEMPLATE" in client.get("/pricing").get_data(as_text=True)
    assert "NAMED TEMPLATE" in client.get("/about").get_data(as_text=True)
    webinar = client.get("/webinar").get_data(as_text=True)  # the parent's page-landing.html
    assert 'class="hero"' in webinar and "Lead scoring for small teams" in webinar
    thanks = client.get("/thank-you").get_data(as_text=True)  # the parent's page.html
    assert '<article class="wrap narrow page">' in thanks


def test_markdown_features_render(app):
    text = ("# Title\n\n[TOC]\n\n## Part one {: .lead }\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
            "```python\nprint('hi')\n```\n")
    with app.test_request_context("/"):
        from engine.content.render import render_markdown
        html = str(render_markdown(text, {"request": None, "item": None}))
    assert '<h2 class="lead" id="part-one">Part one</h2>' in html
    assert "<table>" in html and "<td>1</td>" in html
    assert '<code class="language-python">' in html
    assert 'href="#part-one"' in html  # the table of contents


@pytest.mark.parametrize("hostile", [
    "<script>alert(1)</script>",
    '<img src="x.png" onerror="alert(1)">',
    '<a href="javascript:alert(1)">click</a>',
    '[click](javascript:alert(1))',
    '<p onclick="alert(1)" style="color:red">x</p>',
    '<iframe src="https://evil.example"></iframe>',
    '<svg><script>alert(1)</script></svg>',
    "Text\n{: onmouseover=\"alert(1)\" }",
])
def test_sanitising_leaves_no_script_and_no_event_handlers(app, client, hostile):
    item = post(app, "Hostile", body=f"Before\n\n{hostile}\n\nAfter")
    html = client.get(item.path).get_data(as_text=True)
    body = html.split('<div class="prose">')[1].split("</div>")[0]
    assert "Before" in body and "After" in body
    tags = _elements(body)
    assert not {"script", "iframe", "svg"} & {tag for tag, _ in tags}
    attributes = [(name, value or "") for _, attrs in tags for name, value in attrs]
    assert not [name for name, _ in attributes if name.startswith("on") or name == "style"]
    assert not [value for _, value in attributes if "javascript:" in value.lower()]


def _elements(html):
    """Every element (tag, attributes) in `html`, as a browser's parser would see them."""
    from html.parser import HTMLParser
    found = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))
    Collector().feed(html)
    return found


def test_landing_page_fields_cannot_smuggle_script_urls(app, client):
    from engine.content import service as svc
    with app.app_context():
        svc.create_item("page", "Offer", status="published", template="landing", fields={
            "headline": "<b>Bold</b>", "cta": {"label": "Go", "url": "javascript:alert(1)"}})
    html = client.get("/offer").get_data(as_text=True)
    assert "&lt;b&gt;Bold&lt;/b&gt;" in html
    assert 'href="#">Go</a>' in html and "javascript:" not in html


def test_shortcodes_render_and_unknown_ones_show_a_hint(app, client):
    item = post(app, "Shortcodes", body=(
        '[cta url="/pricing" label="See pricing"]\n\n'
        'Inline [nosuchcode thing] here.\n\n'
        '[cta url="javascript:alert(1)" label="Bad"]\n\n'
        '`[cta url="/x" label="In code"]` and [[cta literal]]\n'))
    response = client.get(item.path)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<a class="button button-primary" href="/pricing">See pricing</a>' in html
    assert 'class="shortcode-hint"' in html and "unknown shortcode" in html
    assert "[nosuchcode thing]" in html
    assert 'href="#">Bad</a>' in html  # javascript: URL refused
    assert '<code>[cta url="/x" label="In code"]</code>' in html
    assert "[cta literal]" in html


@pytest.mark.both_backends
def test_feeds_are_valid_and_list_every_published_post_with_full_content(app, client):
    load_demo(app)
    draft = post(app, "Not yet", status="draft")
    with app.app_context():
        published = {p.path for p in service.recent_posts(100)}
    assert len(published) >= 6
    rss = feedparser.parse(client.get("/feed.xml").data)
    assert not rss.bozo, rss.get("bozo_exception")
    assert rss.version == "rss20"
    assert {e.link.replace("http://localhost", "") for e in rss.entries} == published
    first = rss.entries[0]
    assert first.content[0].value.count("<p>") > 3  # full content, not a summary
    assert first.author and first.tags
    atom = feedparser.parse(client.get("/atom.xml").data)
    assert not atom.bozo, atom.get("bozo_exception")
    assert atom.version == "atom10"
    assert {e.link.replace("http://localhost", "") for e in atom.entries} == published
    assert atom.entries[0].content[0].type == "text/html"
    assert draft.path not in str(rss.entries) + str(atom.entries)
    assert client.get("/feed.xml").headers["Content-Type"].startswith("application/rss+xml")


@pytest.mark.both_backends
def test_sitemap_is_valid_xml_with_every_indexable_published_page_and_post(app, client):
    load_demo(app)
    post(app, "Draft", status="draft")
    root = ET.fromstring(client.get("/sitemap.xml").data)
    assert root.tag == "{http://www.sitemaps.org/schemas/sitemap/0.9}urlset"
    urls = {u.findtext("s:loc", namespaces=SITEMAP_NS):
            u.findtext("s:lastmod", namespaces=SITEMAP_NS)
            for u in root.findall("s:url", SITEMAP_NS)}
    with app.app_context():
        from engine.db import db
        expected = {i.path for kind in ("page", "post")
                    for i in db.session.scalars(service.visible_query(kind)) if not i.noindex}
    paths = {u.replace("http://localhost", "") for u in urls}
    assert expected <= paths and "/blog/draft" not in paths
    assert "/thank-you" not in paths  # the demo's thank-you page is `noindex: true`
    thanks = client.get("/thank-you").get_data(as_text=True)
    assert '<meta name="robots" content="noindex">' in thanks
    assert 'name="robots"' not in client.get("/about").get_data(as_text=True)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", m) for m in urls.values() if m)
    robots = client.get("/robots.txt").get_data(as_text=True)
    assert "Sitemap: http://localhost/sitemap.xml" in robots


@pytest.mark.parametrize("site_url, base", [("", "http://blog.example:8080"),
                                             ("https://www.example.com/", "https://www.example.com")])
def test_absolute_links_use_site_url_else_the_host_asked_for(make_app, site_url, base):
    """Feeds, sitemap and canonical links are read by whoever asked, so without SITE_URL the
    request's host serves; links in emails never do (engine.web.links)."""
    app = make_app(SITE_URL=site_url)
    post(app, "Hello")
    client = app.test_client()
    asked = {"base_url": "http://blog.example:8080"}
    assert f"Sitemap: {base}/sitemap.xml" in client.get("/robots.txt", **asked).get_data(
        as_text=True)
    assert f"<link>{base}/blog</link>" in client.get("/feed.xml", **asked).get_data(as_text=True)


def test_seo_meta_open_graph_twitter_and_json_ld(app, client):
    load_demo(app)
    home = client.get("/").get_data(as_text=True)
    assert '<link rel="canonical" href="http://localhost/">' in home
    assert '<meta property="og:title" content="Brightwater Studio">' in home
    assert '<meta name="twitter:card"' in home
    assert '"@type": "Organization"' in home and '"name": "Brightwater Studio"' in home
    article = client.get("/blog/landing-page-fixes").get_data(as_text=True)
    assert '<meta property="og:type" content="article">' in article
    assert '"@type": "BlogPosting"' in article and '"author": {"@type": "Person"' in article
    assert '<meta property="article:tag" content="landing-pages">' in article
    assert '<meta name="description" content="Seven quick, specific landing page fixes' in article


@pytest.mark.both_backends
def test_scheduled_post_is_invisible_before_its_time_and_visible_after(app, client):
    load_demo(app)
    assert client.get("/blog").headers["X-Magnet-Cache"] == "miss"
    soon = utcnow() + timedelta(seconds=2)
    item = post(app, "From the future", published_at=soon)
    assert item.status == "scheduled"
    for path in ("/blog", "/feed.xml", "/sitemap.xml", "/atom.xml", "/blog/tag/x"):
        client.get(path)  # cache every listing while the post is still in the future
    for path in ("/blog", "/feed.xml", "/atom.xml", "/sitemap.xml"):
        assert b"from-the-future" not in client.get(path).data, path
    assert client.get(item.path).status_code == 404
    import time
    time.sleep(max(0.0, (soon - utcnow()).total_seconds()) + 0.2)
    for path in ("/blog", "/feed.xml", "/atom.xml", "/sitemap.xml"):
        assert b"from-the-future" in client.get(path).data, path
    assert client.get(item.path).status_code == 200
    with app.app_context():
        assert service.publish_due() == [item.id]
        assert service.publish_due() == []  # fired once only
        assert service.get_item("post", "from-the-future").status == "published"


@pytest.mark.both_backends
def test_slug_change_leaves_a_permanent_redirect(app, client):
    item = post(app, "Old title")
    assert client.get("/blog/old-title").status_code == 200
    with app.app_context():
        service.update_item(item.id, slug="new-title")
        service.update_item(item.id, slug="newest-title")
    first = client.get("/blog/old-title")
    assert first.status_code == 301 and first.headers["Location"] == "/blog/newest-title"
    assert client.get("/blog/new-title").headers["Location"] == "/blog/newest-title"
    assert client.get("/blog/newest-title").status_code == 200
    with app.app_context():  # reusing an old slug for another post takes the URL back
        other = service.create_item("post", "Old title", status="published")
    assert other.slug == "old-title"
    assert client.get("/blog/old-title").status_code == 200


def test_unknown_pages_get_the_themes_404_and_errors_the_themes_500(app, client):
    @app.get("/boom")
    def boom():
        raise RuntimeError("broken")
    app.config["PROPAGATE_EXCEPTIONS"] = False
    load_demo(app)
    response = client.get("/no-such-page")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "We couldn’t find that page" in html and '<meta name="robots" content="noindex">' in html
    assert 'href="/blog/seo-basics-for-small-business-blogs"' in html  # recent posts to go to
    ways_back = html.split('<ul class="link-list">')[1].split("</ul>")[0]
    assert '<a href="/pricing">Pricing</a>' in ways_back  # and the main menu, named
    error = client.get("/boom")
    assert error.status_code == 500 and "Something went wrong on our side" in error.get_data(
        as_text=True)


@pytest.mark.both_backends
def test_page_cache_serves_anonymous_views_and_is_invalidated_by_publishing(app, client):
    load_demo(app)
    assert client.get("/blog").headers["X-Magnet-Cache"] == "miss"
    cached = client.get("/blog")
    assert cached.headers["X-Magnet-Cache"] == "hit"
    assert client.get("/blog", headers={"If-None-Match": cached.headers["ETag"]}).status_code == 304
    assert client.get("/blog?utm_source=news").headers["X-Magnet-Cache"] == "hit"
    assert client.get("/blog/tag/no-such-tag").status_code == 404
    item = post(app, "Brand new post")
    fresh = client.get("/blog")
    assert fresh.headers["X-Magnet-Cache"] == "miss" and b"Brand new post" in fresh.data
    with app.app_context():
        service.unpublish(item.id)
    assert b"Brand new post" not in client.get("/blog").data
    from tests.admin_helpers import signed_in
    editor = signed_in(app, "editor")  # signed-in editors never get cached pages
    assert "X-Magnet-Cache" not in editor.get("/blog").headers


@pytest.mark.both_backends
def test_cache_invalidation_reaches_other_processes(make_app):
    """Two apps on one database stand in for two web processes."""
    first = make_app()
    second = make_app(SQLALCHEMY_DATABASE_URI=first.config["SQLALCHEMY_DATABASE_URI"])
    post(first, "Hello")
    time.sleep(generation.TTL)  # the second may trust the generation it read at start that long
    a, b = first.test_client(), second.test_client()
    assert b"Hello" in a.get("/blog").data and b"Hello" in b.get("/blog").data
    assert b.get("/blog").headers["X-Magnet-Cache"] == "hit"
    post(first, "Second post")
    time.sleep(generation.TTL)  # how long another process may trust what it read
    assert b"Second post" in b.get("/blog").data
    with first.app_context():
        first.extensions["magnet.themes"].use("editorial")
    time.sleep(generation.TTL)
    html = b.get("/blog/hello").get_data(as_text=True)
    assert "editorial-header" in html


@pytest.mark.both_backends
def test_sync_is_idempotent_and_reports_items_edited_since(app, tmp_path):
    import shutil
    folder = tmp_path / "content"
    shutil.copytree(app.config["CONTENT_PATH"], folder,
                    ignore=shutil.ignore_patterns("forms", "assets"))
    with app.app_context():
        first = sync.sync(folder)
        assert len(first.created) >= 12 and not first.errors
        generation = cache.generation()
        again = sync.sync(folder)
        assert again.created == again.updated == again.conflicts == []
        assert cache.generation() == generation  # nothing changed, nothing re-rendered
        revisions = {i.slug: len(service.list_revisions(i.id)) for i in _items()}

        about = folder / "pages" / "about.md"
        about.write_text(about.read_text().replace("kitchen table", "garden table"))
        changed = sync.sync(folder)
        assert changed.updated == ["page about"]
        assert "garden table" in service.get_item("page", "about").body

        pricing = service.get_item("page", "pricing")
        service.update_item(pricing.id, body="Edited in the admin.", actor="editor")
        path = folder / "pages" / "pricing.md"
        path.write_text(path.read_text().replace("£900", "£950"))
        report = sync.sync(folder)
        assert report.conflicts == ["page pricing"]
        assert any("NOT updated page pricing" in line for line in report.lines())
        assert service.get_item("page", "pricing").body == "Edited in the admin."
        forced = sync.sync(folder, force=True)
        assert (forced.updated == ["page pricing"]
                and "£950" in service.get_item("page", "pricing").body)
        assert {i.slug: len(service.list_revisions(i.id)) for i in _items()}["webinar"] == \
            revisions["webinar"]


def _items():
    from sqlalchemy import select

    from engine.content.models import ContentItem
    from engine.db import db
    return list(db.session.scalars(select(ContentItem)))


def test_export_writes_files_that_sync_back_unchanged(app, tmp_path):
    load_demo(app)
    out = tmp_path / "exported"
    with app.app_context():
        written = sync.export(out)
        assert any(w.endswith("posts/landing-page-fixes.md") for w in written)
        report = sync.sync(out)
        assert report.created == report.updated == report.conflicts == []
        text = (out / "pages" / "home.md").read_text()
        assert "template: landing" in text and "form: ebook" in text  # the form section


def test_revisions_are_kept_and_restorable(app):
    item = post(app, "Versioned", body="First")
    with app.app_context():
        service.update_item(item.id, body="Second")
        revisions = service.list_revisions(item.id)
        assert [r.number for r in revisions] == [2, 1]
        restored = service.restore_revision(revisions[1].id, actor="ed")
        assert restored.body == "First"
        assert len(service.list_revisions(item.id)) == 3


def test_cli_sync_and_export(app, tmp_path):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["content", "sync", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "created page home" in result.output
    with app.app_context():
        assert not sync.has_content()
    result = runner.invoke(args=["content", "sync"])
    assert "0 errors" in result.output
    result = runner.invoke(args=["content", "export", str(tmp_path / "out")])
    assert result.exit_code == 0 and (tmp_path / "out" / "posts").is_dir()


def test_first_run_loads_the_demo_only_into_an_empty_site(app):
    from engine.content.setup import load_demo as first_run
    with app.app_context():
        notes = first_run(app, "http://127.0.0.1:8000")
        assert "Loaded the demo site" in notes[0]
        assert service.visible_item("page", "home") is not None
        assert first_run(app, "http://127.0.0.1:8000") == []


@pytest.mark.both_backends
def test_publish_due_job_marks_scheduled_posts_published_in_a_worker(app, work):
    item = post(app, "Soon", published_at=utcnow() + timedelta(seconds=1))
    assert item.status == "scheduled"
    import time
    time.sleep(1.1)
    with app.app_context():
        from engine.jobs import enqueue
        enqueue("content.publish_due")
    work(app)
    with app.app_context():
        assert service.get_item("post", "soon").status == "published"


def test_blog_index_and_tag_archives_paginate(app, client):
    for number in range(12):
        post(app, f"Post number {number}", tags=["series"],
             published_at=utcnow() - timedelta(days=number))
    first = client.get("/blog").get_data(as_text=True)
    assert first.count('<li class="card">') == 10 and "Post number 0" in first
    assert '<a rel="next" href="/blog/page/2">' in first and "Page 1 of 2" in first
    second = client.get("/blog/page/2").get_data(as_text=True)
    assert second.count('<li class="card">') == 2 and "Post number 11" in second
    assert '<a rel="prev" href="/blog">' in second
    assert client.get("/blog/page/3").status_code == 404
    assert client.get("/blog/page/1").headers["Location"] == "/blog"
    tag_page = client.get("/blog/tag/series/page/2").get_data(as_text=True)
    assert "12 posts on this topic (page 2 of 2)" in tag_page
    assert client.get("/blog/tag/Series").headers["Location"] == "/blog/tag/series"


HOSTILE_SHORTCODE = '''
from engine.plugins import hookimpl

DEFAULT_ENABLED = True


@hookimpl
def register_shortcodes():
    return {"sc": lambda args, context: "<img src=x onerror=alert(1)>"}
'''


def _elements_with_handlers(html: str) -> list[tuple[str, dict]]:
    """Every element of `html` carrying an `on...` attribute, as a browser would parse it."""
    from html.parser import HTMLParser
    found = []

    class Finder(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if any(name.startswith("on") for name, _ in attrs):
                found.append((tag, dict(attrs)))
    Finder().feed(html)
    return found


def test_a_shortcode_inside_an_attribute_stays_text(make_app, make_plugins):
    """A shortcode's HTML is trusted only in text content: placed inside an attribute (a title,
    a link's href, an image's alt, attr_list's {: }), it is shown as its own escaped text, on
    the site and in the admin's live preview alike."""
    from tests.admin_helpers import signed_in
    app = make_app(fresh_db=True, PLUGINS_PATH=str(make_plugins(hostile=HOSTILE_SHORTCODE)))
    body = ("<span title='[sc]'>a</span> and <span title=\"x [sc] y\n[sc]\">b</span>\n\n"
            "[a link](https://example.com/[sc]) and <a href=\"[sc]\">c</a>\n\n"
            "![a [sc] picture](/x.png) <img alt='[sc]' src=/y.png>\n\n"
            "A paragraph\n{: title=\"[sc]\" }\n\n"
            "In text: [sc]\n")
    item = post(app, "Attributes", body=body)
    page = app.test_client().get(item.path).get_data(as_text=True)
    editor = signed_in(app, "editor")
    token = re.search(r'name="csrf-token" content="([^"]+)"',
                      editor.get("/admin/").get_data(as_text=True)).group(1)
    preview = editor.post("/admin/content/preview",
                          data={"csrf_token": token, "body": body}).get_data(as_text=True)
    for html in (page, preview):
        # the one in text content renders; none inside an attribute does
        assert _elements_with_handlers(html) == [("img", {"src": "x", "onerror": "alert(1)"})]
        assert 'title="[sc]"' in html and 'alt="[sc]"' in html and 'href="[sc]"' in html
        assert 'title="x [sc] y\n[sc]"' in html


@pytest.mark.both_backends
def test_sync_after_a_rename_in_the_admin_reports_the_conflict_and_changes_nothing(app, tmp_path):
    """A page's slug changed in the admin: its file (still saying the old slug) is recognised
    by its path, reported with file and page, and no second page appears at the old URL."""
    import shutil
    folder = tmp_path / "content"
    shutil.copytree(app.config["CONTENT_PATH"], folder,
                    ignore=shutil.ignore_patterns("forms", "assets"))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["content", "sync", str(folder)]).exit_code == 0
    with app.app_context():
        about = service.get_item("page", "about")
        service.update_item(about.id, slug="about-us", actor="editor")
        count = len(_items())
    client = app.test_client()
    assert client.get("/about").headers["Location"].endswith("/about-us")

    result = runner.invoke(args=["content", "sync", str(folder)])
    assert result.exit_code == 1, result.output
    assert "NOT updated page about-us from pages/about.md" in result.output
    assert "renamed to 'about-us'" in result.output and "1 not updated" in result.output
    (folder / "pages" / "about.md").write_text(
        (folder / "pages" / "about.md").read_text().replace("kitchen table", "garden table"))
    assert runner.invoke(args=["content", "sync", str(folder)]).exit_code == 1  # still
    with app.app_context():
        assert len(_items()) == count and service.get_item("page", "about") is None
        assert "garden table" not in service.get_item("page", "about-us").body
    assert client.get("/about").status_code == 301
    sitemap = client.get("/sitemap.xml").get_data(as_text=True)
    assert "/about-us<" in sitemap and "/about<" not in sitemap
    assert client.get("/").get_data(as_text=True).count('href="/about') == \
        client.get("/").get_data(as_text=True).count('href="/about-us"')

    forced = runner.invoke(args=["content", "sync", str(folder), "--force"])
    assert forced.exit_code == 0 and "updated page about-us" in forced.output
    with app.app_context():
        assert len(_items()) == count and "garden table" in service.get_item("page", "about").body


def test_a_slug_changed_in_the_file_renames_its_page(app, tmp_path):
    import shutil
    folder = tmp_path / "content"
    shutil.copytree(app.config["CONTENT_PATH"], folder,
                    ignore=shutil.ignore_patterns("forms", "assets"))
    with app.app_context():
        sync.sync(folder)
        count = len(_items())
        path = folder / "pages" / "pricing.md"
        path.write_text(path.read_text().replace("title:", "slug: prices\ntitle:", 1))
        report = sync.sync(folder)
        assert report.updated == ["page pricing"] and not report.conflicts
        assert len(_items()) == count and service.get_item("page", "prices") is not None
        assert sync.sync(folder).conflicts == []
    assert app.test_client().get("/pricing").headers["Location"].endswith("/prices")


def test_hook_register_content_folders(make_app, make_plugins, tmp_path):
    folder = make_plugins(snippets='''
        """Keeps snippets as files beside the pages."""
        from pathlib import Path
        from engine.content.sync import ContentFolder
        from engine.plugins import hookimpl
        DEFAULT_ENABLED = True
        SEEN = []

        def sync(folder, dry_run):
            SEEN.extend(p.name for p in sorted(Path(folder).glob("*.txt")))
            return [f"read {len(SEEN)} snippet(s)"]

        def export(folder):
            (Path(folder) / "hello.txt").write_text("hello")

        @hookimpl
        def register_content_folders():
            return [ContentFolder("snippets", sync=sync, export=export)]
    ''')
    app = make_app(PLUGINS_PATH=str(folder))
    site = tmp_path / "site"
    (site / "snippets").mkdir(parents=True)
    (site / "snippets" / "a.txt").write_text("a")
    runner = app.test_cli_runner()
    synced = runner.invoke(args=["content", "sync", str(site)])
    assert synced.exit_code == 0, synced.output
    assert "snippets: read 1 snippet(s)" in synced.output
    out = tmp_path / "out"
    assert runner.invoke(args=["content", "export", str(out)]).exit_code == 0
    assert (out / "snippets" / "hello.txt").read_text() == "hello"
    assert (out / "forms").is_dir()  # the engine's own forms are such a folder
