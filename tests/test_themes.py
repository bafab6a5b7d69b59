"""Themes: discovery, the active theme stored in the database, child themes, the CLI."""
from __future__ import annotations

import pytest

from engine.themes.registry import ThemeError, discover
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
