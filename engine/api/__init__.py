"""The public API: events sent from outside (shops, CRMs, scripts), with keys owners create.

`POST /api/v1/events` (an edge route: answered ahead of Flask's request cycle) checks an event
and keeps it in the intake (`intake.accept`); a worker stores its contact and event from there
in batches (`drain`). `magnet events record` checks the same way (`intake.check`) and stores at
once (`intake.record_external`).
"""
from __future__ import annotations

from flask import Flask

DEFAULTS = {
    "API_RATE_LIMIT": 100,  # requests per key per API_RATE_WINDOW seconds
    "API_RATE_WINDOW": 1,
    # A process reports a key's requests to the shared (Redis) counter once per this many (or
    # per 1% of the limit, when that is more), so across N processes a key can pass the limit
    # by up to N x (API_RATE_BLOCK - 1), or N x 1% of it.
    "API_RATE_BLOCK": 10,
    "API_MAX_BYTES": 64 * 1024,
    "API_IDEMPOTENCY_SECONDS": 86400,  # how long an idempotency key is remembered
    # Intake rows the drain stores per transaction: a batch holds SQLite's write lock while the
    # web waits to store more (about 0.1 ms a row; 250 hold it some 25 ms).
    "API_INTAKE_BATCH": 250,
    # SQLite: a drain job waits this long before it begins, so a burst of requests is stored
    # in one transaction rather than one each (at the price of this much latency; 0.05 s
    # made batches of a few dozen under a steady stream, each paying a job and a commit).
    "API_INTAKE_GATHER_SECONDS": 0.2,
    # A web process wakes the drain this long after the first event it accepted, for all it
    # accepted meanwhile (0: at once, after each request's commit).
    "API_INTAKE_WAKE_LINGER": 0.05,
}


def init_app(app: Flask) -> None:
    from engine.api import models  # noqa: F401  (tables known to migrations)
    from engine.api.cli import events_group
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    app.cli.add_command(events_group)
