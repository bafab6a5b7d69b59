"""Placeholder until written (segment conditions)."""
from typing import Any


def kinds() -> list[Any]:
    return []
