"""The API as a built-in plugin: its edge route, the intake's sweep and the job that forgets
processed intake rows."""
from __future__ import annotations

from typing import Any

from engine.api import drain, endpoint, intake
from engine.plugins import hookimpl


@hookimpl
def register_edge_routes() -> list[Any]:
    return [endpoint.ROUTE, *endpoint.OTHER_METHODS]


@hookimpl
def register_jobs() -> list[Any]:
    return [intake.forget_idempotency_keys, drain.sweep]
