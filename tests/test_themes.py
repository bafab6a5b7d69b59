"""Themes: discovery, the active theme stored in the database, child themes, the CLI."""
from __future__ import annotations

import time

import pytest

from engine.themes.registry import ThemeError, discover
from engine.web import generation
from tests.content_helpers import load_demo


def test_child_theme_overrides_one_template_and_extends_the_parents(app, client):
    load_demo(app)
    before = client.get("/blog/landing-page-fixes").get_data(as_text=True)
    assert "editorial-header" not in before
    with app.app_context():
        app.extensions["magnet.themes"].use("editorial")
    html = client.get("/blog/landing-page-fixes").get_data(as_text=True)
    header = html.split('<header class="post-header editorial-header">')[1].split("</header>")[0]
    assert 'href="/blog/tag/landing-pages"' in header  # the child's topic-first header
    assert header.index("min read") < header.index("Tom Reiner")
    assert 'id="related-heading"' in html and 'rel="tag"' in html  # the parent's blocks remain
    assert "/themes/default/static/css/site.css" in html  # static files come from the parent
    page = client.get("/pricing").get_data(as_text=True)
    assert '<article class="wrap narrow page">' in page  # not overridden: the parent's


def test_active_theme_is_stored_and_listed_by_the_cli(app):
    runner = app.test_cli_runner()
    listing = runner.invoke(args=["themes", "list"]).output
    assert "* default" in listing and "editorial" in listing and "child of default" in listing
    result = runner.invoke(args=["themes", "use", "editorial"])
    assert result.exit_code == 0, result.output
    from engine.themes.models import ThemeState
    with app.app_context():
        from engine.db import db
        assert db.session.get(ThemeState, 1).active == "editorial"
    assert "* editorial" in runner.invoke(args=["themes", "list"]).output
    missing = runner.invoke(args=["themes", "use", "nope"])
    assert missing.exit_code != 0 and "no theme named 'nope'" in missing.output


def test_theme_static_files_are_served_and_paths_are_confined(client):
    response = client.get("/themes/default/static/css/site.css")
    assert response.status_code == 200 and b":focus-visible" in response.data
    assert client.get("/themes/default/static/../theme.toml").status_code == 404
    assert client.get("/themes/nope/static/css/site.css").status_code == 404


def test_broken_theme_folders_are_refused(tmp_path):
    (tmp_path / "orphan").mkdir()
    (tmp_path / "orphan" / "theme.toml").write_text('name = "orphan"\nparent = "ghost"\n')
    with pytest.raises(ThemeError, match="ghost"):
        discover(tmp_path)


def _post_header(html: str) -> bool:
    return 'class="post-header editorial-header"' in html


def test_an_owner_previews_a_theme_while_visitors_keep_the_active_one(app, client):
    import re
    import time

    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    from engine.themes import preview
    from tests.admin_helpers import signed_in

    load_demo(app)
    post_path = "/blog/landing-page-fixes"
    assert not _post_header(client.get(post_path).get_data(as_text=True))  # warms both caches

    owner = signed_in(app, "owner")
    themes_page = owner.get("/admin/themes").get_data(as_text=True)
    link = re.search(r'href="([^"]*preview_theme=editorial[^"]*)"', themes_page).group(1)
    link = link.replace("&amp;", "&")
    landing = owner.get(link)
    assert landing.status_code == 200 and "private, no-store" in landing.headers["Cache-Control"]
    assert "Previewing the theme <strong>editorial</strong>" in landing.get_data(as_text=True)
    previewed = owner.get(post_path).get_data(as_text=True)  # the cookie carries the preview on
    assert _post_header(previewed) and 'id="related-heading"' in previewed

    visitor = client.get(post_path)  # at the same moment: the active theme, from the page cache
    assert visitor.headers["X-Magnet-Cache"] == "hit"
    assert not _post_header(visitor.get_data(as_text=True))
    stranger = app.test_client()  # a fresh render must not reuse the preview's compiled template
    with app.app_context():
        from engine.content.cache import invalidate
        invalidate()
    fresh = stranger.get(post_path)
    assert fresh.headers["X-Magnet-Cache"] == "miss"
    assert not _post_header(fresh.get_data(as_text=True))
    assert _post_header(owner.get(post_path).get_data(as_text=True))

    query = link.split("?", 1)[1]
    other_theme = query.replace("preview_theme=editorial", "preview_theme=default")
    forged = app.test_client().get(f"{post_path}?{other_theme}")
    tampered = app.test_client().get(f"{post_path}?{query[:-3]}xyz")
    for response in (forged, tampered):
        assert not _post_header(response.get_data(as_text=True))
        assert preview.COOKIE not in response.headers.get("Set-Cookie", "")

    class LongAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 2 * preview.DEFAULT_SECONDS
    expired = URLSafeTimedSerializer(app.secret_key, salt=f"magnet.{preview.PURPOSE}",
                                     signer=LongAgo)
    stale = app.test_client().get(post_path, query_string={
        "preview_theme": "editorial", "sig": expired.dumps("editorial")})
    assert not _post_header(stale.get_data(as_text=True))

    assert owner.get("/themes/preview/end").status_code == 302
    assert not _post_header(owner.get(post_path).get_data(as_text=True))
    with app.app_context():
        assert app.extensions["magnet.themes"].active.name == "default"


def test_a_theme_added_while_the_site_runs_can_be_chosen_without_a_restart(make_app, tmp_path):
    import shutil
    from pathlib import Path

    from engine.config import PROJECT_ROOT
    themes = tmp_path / "themes"
    shutil.copytree(PROJECT_ROOT / "themes", themes)
    app = make_app(THEMES_PATH=str(themes), PLUGIN_STATE_REFRESH_SECONDS=0)
    client = app.test_client()
    assert client.get("/").status_code == 200
    (themes / "fresh" / "templates").mkdir(parents=True)
    (themes / "fresh" / "theme.toml").write_text('name = "fresh"\nparent = "default"\n')
    (themes / "fresh" / "templates" / "base.html").write_text(
        '{% extends "default:base.html" %}{% block body_class %}fresh-look{% endblock %}')
    # `magnet themes use fresh`, in another process with an app of its own
    other = make_app(instance=Path(app.instance_path), THEMES_PATH=str(themes))
    with other.app_context():
        other.extensions["magnet.themes"].use("fresh")
    time.sleep(generation.TTL)  # how long the first process may trust the generation it read
    assert "fresh-look" in client.get("/").text
