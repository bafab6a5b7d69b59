"""A campaign's report (placeholder until built)."""
from __future__ import annotations

from flask import Blueprint


def register(blueprint: Blueprint) -> None:
    """Add the report's routes."""
