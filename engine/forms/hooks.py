"""The forms concern as a built-in plugin: its shortcodes and its follow-up jobs."""
from __future__ import annotations

from typing import Any

from engine.plugins import hookimpl


@hookimpl
def register_jobs() -> list[Any]:
    return []
