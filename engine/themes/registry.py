"""Theme discovery and the active theme of this process.

A theme is a folder `themes/<name>/` with `theme.toml` (name, version, description, parent),
`templates/` and `static/`. A child theme names a `parent`; its templates are searched first,
then the parent's, so a child overrides only what it ships.

The active theme is stored in the database (`theme_state`). Each process keeps its own copy and
re-reads it when the page-cache generation changes (a theme switch bumps it, see
`engine.content.cache`) or every few seconds, then clears Jinja's template cache so the same
template name resolves to the new theme's file. The same check reads the themes folder again,
so a theme copied in while the site runs can be previewed and chosen without a restart.
"""
from __future__ import annotations

import logging
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, current_app
from sqlalchemy import select

from engine.db import db, utcnow, write
from engine.themes.models import ThemeState
from engine.themes.preview import previewed
from engine.web import generation

log = logging.getLogger("magnet.themes")

DEFAULT_THEME = "default"


class ThemeError(Exception):
    """A theme is missing, malformed or names a parent that does not exist."""


@dataclass(frozen=True)
class Theme:
    name: str
    version: str
    description: str
    parent: str | None
    path: Path

    @property
    def templates(self) -> Path:
        return self.path / "templates"

    @property
    def static(self) -> Path:
        return self.path / "static"


def discover(themes_path: str | Path) -> dict[str, Theme]:
    """Every theme under `themes_path`, by name; refuses unknown parents and cycles."""
    found: dict[str, Theme] = {}
    folder = Path(themes_path)
    for manifest in sorted(folder.glob("*/theme.toml")) if folder.is_dir() else []:
        try:
            data = tomllib.loads(manifest.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ThemeError(f"{manifest}: {exc}") from exc
        name = str(data.get("name") or manifest.parent.name)
        found[name] = Theme(name=name, version=str(data.get("version", "0")),
                            description=str(data.get("description", "")),
                            parent=data.get("parent") or None, path=manifest.parent)
    for theme in found.values():
        seen = {theme.name}
        parent = theme.parent
        while parent:
            if parent not in found:
                raise ThemeError(f"theme {theme.name!r} names parent {parent!r}, "
                                 "which is not installed")
            if parent in seen:
                raise ThemeError(f"theme {theme.name!r} has a parent cycle")
            seen.add(parent)
            parent = found[parent].parent
    return found


class Themes:
    """Flask extension: `app.extensions["magnet.themes"]`."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.path = Path(app.config["THEMES_PATH"])
        self.themes = discover(self.path)
        self.refresh_seconds = float(app.config.get("PLUGIN_STATE_REFRESH_SECONDS", 2.0))
        self._active = (DEFAULT_THEME if DEFAULT_THEME in self.themes
                        else next(iter(self.themes), ""))
        self._checked_at = 0.0
        self._generation: int | None = None
        app.extensions["magnet.themes"] = self

    # --- which theme ------------------------------------------------------------------------

    @property
    def active(self) -> Theme | None:
        return self.themes.get(self._active)

    def chain(self, name: str | None = None) -> list[Theme]:
        """The theme and its ancestors, child first: the template search order. Without a
        name, the theme this request shows: a signed preview's, else the active one."""
        theme = self.themes.get(name or previewed() or self._active)
        out = []
        while theme is not None:
            out.append(theme)
            theme = self.themes.get(theme.parent) if theme.parent else None
        return out

    def refresh(self, generation: int | None = None, force: bool = False) -> None:
        """Re-read the active theme when the cache generation moved or the interval passed."""
        now = time.monotonic()
        if not force and generation is not None and generation == self._generation:
            return
        if not force and generation is None and now - self._checked_at < self.refresh_seconds:
            return
        self._checked_at = now
        if generation is not None:
            self._generation = generation
        self.rediscover()
        try:
            stored = db.session.scalar(select(ThemeState.active).where(ThemeState.id == 1))
        except Exception:  # before the first `db upgrade`
            db.session.rollback()
            return
        self._switch_to(stored)

    def rediscover(self) -> None:
        """Read the themes folder again; a folder half copied (or broken) is skipped, with a
        warning, until it is whole."""
        try:
            found = discover(self.path)
        except (ThemeError, OSError) as exc:
            log.warning("the themes folder has a theme that cannot be used yet: %s", exc)
            return
        if found != self.themes:
            self.themes = found

    def _switch_to(self, name: str | None) -> None:
        if not name or name not in self.themes:
            if name:
                log.warning("active theme %r is not installed; using %r", name, DEFAULT_THEME)
            name = DEFAULT_THEME if DEFAULT_THEME in self.themes else self._active
        if name != self._active:
            self._active = name
            cache = getattr(self.app.jinja_env, "cache", None)
            if cache is not None:
                cache.clear()

    def use(self, name: str) -> Theme:
        """Make `name` the site's theme in every process (the site's generation moves on, so
        cached pages are rendered again)."""
        if name not in self.themes:
            self.rediscover()
        if name not in self.themes:
            raise ThemeError(f"no theme named {name!r}; "
                             f"installed: {', '.join(sorted(self.themes))}")
        with write() as session:
            row = session.get(ThemeState, 1) or ThemeState(id=1)
            row.active = name
            row.updated_at = utcnow()
            session.add(row)
            generation.bump()
        self._switch_to(name)
        return self.themes[name]

    # --- files ------------------------------------------------------------------------------

    def static_file(self, filename: str) -> Theme | None:
        """The theme in the active chain that ships `static/<filename>`."""
        for theme in self.chain():
            if (theme.static / filename).is_file():
                return theme
        return None


def current() -> Themes:
    return current_app.extensions["magnet.themes"]
