"""The templates an editor may choose for a page or post: the active theme's (and its
parents') `<kind>-<name>.html` files, offered as `<name>` (`page-landing.html` -> `landing`).
`views.hierarchy` tries `<kind>-<name>.html` before `<kind>.html`, so a name the theme lacks
would silently fall back; the editor refuses it instead."""
from __future__ import annotations

import re

from engine.themes import current as themes

NAME = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")


def choices(kind: str) -> list[str]:
    """Template names for `kind` in the active theme, sorted."""
    registry = themes()
    registry.refresh()
    found: set[str] = set()
    for theme in registry.chain(registry.active.name if registry.active else None):
        for path in theme.templates.glob(f"{kind}-*.html"):
            name = path.stem[len(kind) + 1:]
            if NAME.fullmatch(name):
                found.add(name)
    return sorted(found)
