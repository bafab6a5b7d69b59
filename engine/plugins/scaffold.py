"""`magnet plugins new NAME`: a small plugin that works, with a test that passes."""
from __future__ import annotations

import re
from pathlib import Path

from engine.plugins.discovery import RESERVED_SLUGS

INIT = '''"""{title}: describe in one line what this plugin does for the site."""
from __future__ import annotations

from typing import Any

from flask import Blueprint

from engine.plugins import hookimpl

__version__ = "0.1.0"
TITLE = "{title}"

blueprint = Blueprint("{slug}", __name__, url_prefix="/{slug}")


@blueprint.get("/")
def index() -> str:
    return "Hello from {title}"


@hookimpl
def register_blueprints() -> list[Any]:
    return [blueprint]


@hookimpl
def tpl_body_end(request: Any) -> str:
    return '<p class="{slug}-note">Served with {title}</p>'
'''

TEST = '''"""Tests for the {slug} plugin (run with `pytest plugins/{slug}`)."""


def test_page_answers_only_while_enabled(make_app):
    app = make_app()
    client = app.test_client()
    assert client.get("/{slug}/").status_code == 404
    app.extensions["magnet.plugins"].set_enabled("{slug}", True)
    response = client.get("/{slug}/")
    assert response.status_code == 200
    assert b"Hello from {title}" in response.data


def test_adds_a_note_to_every_page(make_app):
    app = make_app()
    app.extensions["magnet.plugins"].set_enabled("{slug}", True)
    with app.test_request_context("/"):
        html = app.jinja_env.from_string("{{{{ hook('tpl_body_end', request=request) }}}}").render()
    assert "Served with {title}" in html
'''


def scaffold(plugins_path: str | Path, slug: str) -> Path:
    if not re.fullmatch(r"[a-z][a-z0-9_]{1,40}", slug):
        raise ValueError("a plugin name is 2-41 lower-case letters, digits or _, "
                         "starting with a letter")
    if slug in RESERVED_SLUGS:
        raise ValueError(f"{slug!r} is reserved by the engine")
    folder = Path(plugins_path) / slug
    if folder.exists():
        raise ValueError(f"{folder} already exists")
    title = slug.replace("_", " ").capitalize()
    (folder / "tests").mkdir(parents=True)
    (folder / "__init__.py").write_text(INIT.format(slug=slug, title=title))
    (folder / "tests" / f"test_{slug}.py").write_text(TEST.format(slug=slug, title=title))
    return folder
