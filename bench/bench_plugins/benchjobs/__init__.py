"""Benchmark jobs that do nothing, so a measurement shows the worker and the outbox alone."""
from __future__ import annotations

from typing import Any

from engine.jobs import job
from engine.plugins import hookimpl

__version__ = "1.0"
DEFAULT_ENABLED = True


@job("bench.noop")
def noop(**_payload: Any) -> None:
    return None


@hookimpl
def register_jobs() -> list[Any]:
    return [noop]
