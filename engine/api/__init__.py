"""The public API: events sent from outside (shops, CRMs, scripts), with keys owners create.

`POST /api/v1/events` (an edge route: answered ahead of Flask's request cycle) and
`magnet events record` both go through `intake.record_external`, so the HTTP and command-line
paths check and store exactly the same thing.
"""
from __future__ import annotations

from flask import Flask

DEFAULTS = {
    "API_RATE_LIMIT": 100,  # requests per key per API_RATE_WINDOW seconds
    "API_RATE_WINDOW": 1,
    "API_MAX_BYTES": 64 * 1024,
    "API_IDEMPOTENCY_SECONDS": 86400,  # how long an idempotency key is remembered
}


def init_app(app: Flask) -> None:
    from engine.api import models  # noqa: F401  (tables known to migrations)
    from engine.api.cli import events_group
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    app.cli.add_command(events_group)
