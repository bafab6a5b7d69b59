"""The campaign list, editor and actions (placeholder until built)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint

from engine.auth import require_role


@require_role("viewer")
def index() -> Any:
    return "Campaigns"


def register(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/", "index", index)
