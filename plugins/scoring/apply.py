"""Placeholder until written (scoring events)."""
from typing import Any


def apply_events(events: list[dict[str, Any]]) -> None:
    return None
