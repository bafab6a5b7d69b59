"""Themes: the public look of the site, switchable at run time (CLI now, admin too).

Services for the admin: `themes.current().themes` (installed), `.active`, `.use(name)`, and
`themes.preview.link(name)` (a signed link showing the site in another theme to its holder).
"""
from __future__ import annotations

from typing import Any

import click
from flask import Blueprint, Flask, abort, send_from_directory
from flask.cli import AppGroup
from werkzeug.security import safe_join

from engine.themes import preview
from engine.themes.registry import Theme, ThemeError, Themes, current

__all__ = ["Theme", "ThemeError", "Themes", "current", "init_app"]

blueprint = Blueprint("themes", __name__)
themes_group = AppGroup("themes", help="List the installed themes and choose the site's theme.")


@blueprint.get("/themes/<name>/static/<path:filename>")
def static(name: str, filename: str) -> Any:
    theme = current().themes.get(name)
    if theme is None or not safe_join(str(theme.static), filename):
        abort(404)
    return send_from_directory(theme.static, filename, max_age=365 * 86400)


@blueprint.get(preview.END_PATH)
def preview_end() -> Any:
    return preview.end()


def theme_url(filename: str) -> str:
    """URL of a static file of the active theme (or the ancestor that ships it), versioned by
    its modification time so browsers may keep it for a year."""
    theme = current().static_file(filename)
    if theme is None:
        return f"/themes/missing/{filename}"
    version = int((theme.static / filename).stat().st_mtime)
    return f"/themes/{theme.name}/static/{filename}?v={version}"


@themes_group.command("list")
def themes_list() -> None:
    """Installed themes; the active one is marked with *."""
    themes = current()
    themes.refresh(force=True)
    for name, theme in sorted(themes.themes.items()):
        mark = "*" if themes.active and themes.active.name == name else " "
        parent = f"(child of {theme.parent}) " if theme.parent else ""
        click.echo(f"{mark} {name:<16} {theme.version:<8} {parent}{theme.description}")


@themes_group.command("use")
@click.argument("name")
def themes_use(name: str) -> None:
    """Make NAME the site's theme; every running process follows at its next request."""
    try:
        theme = current().use(name)
    except ThemeError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Theme {theme.name} is now active; the page cache was cleared.")


def init_app(app: Flask) -> None:
    themes = app.extensions.get("magnet.themes") or Themes(app)
    app.register_blueprint(blueprint)
    app.cli.add_command(themes_group)
    app.jinja_env.globals["theme_url"] = theme_url
    app.before_request(lambda: themes.refresh())
    preview.init_app(app)
    with app.app_context():
        themes.refresh(force=True)


