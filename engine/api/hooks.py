"""The API as a built-in plugin: its edge route and the job that forgets old idempotency keys."""
from __future__ import annotations

from typing import Any

from engine.api import endpoint, intake
from engine.plugins import hookimpl


@hookimpl
def register_edge_routes() -> list[Any]:
    return [endpoint.ROUTE, *endpoint.OTHER_METHODS]


@hookimpl
def register_jobs() -> list[Any]:
    return [intake.forget_idempotency_keys]
