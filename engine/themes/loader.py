"""The Jinja loader that puts the active theme first.

`name.html` is looked up in the active theme, then its parent (and so on); `<theme>:name.html`
looks only in that theme's chain, so a child theme's `post.html` can
`{% extends "default:post.html" %}` and override just a block, as Datasette's `default:` does.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from jinja2 import BaseLoader, Environment, TemplateNotFound
from jinja2.loaders import split_template_path


class ThemeLoader(BaseLoader):
    def __init__(self, app: Flask) -> None:
        self.app = app

    def _themes(self) -> Any:
        from engine.themes.registry import Themes
        return self.app.extensions.get("magnet.themes") or Themes(self.app)

    def get_source(self, environment: Environment,
                   template: str) -> tuple[str, str, Callable[[], bool]]:
        themes = self._themes()
        name, chain = template, None
        prefix, sep, rest = template.partition(":")
        if sep and prefix in themes.themes:
            name, chain = rest, themes.chain(prefix)
        for theme in chain if chain is not None else themes.chain():
            path = Path(theme.templates, *split_template_path(name))
            if path.is_file():
                mtime = path.stat().st_mtime
                return (path.read_text(encoding="utf-8"), str(path),
                        lambda p=path, m=mtime: p.is_file() and p.stat().st_mtime == m)
        raise TemplateNotFound(template)

    def list_templates(self) -> list[str]:
        themes = self._themes()
        names = set()
        for theme in themes.chain():
            names.update(str(path.relative_to(theme.templates))
                         for path in theme.templates.rglob("*.html"))
        return sorted(names)
