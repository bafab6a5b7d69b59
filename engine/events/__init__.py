"""Events: one stream of everything contacts and visitors do, delivered to plugins exactly once.

- `record()` / `record_many()` store events on the activity timeline inside the caller's
  `write()`, and queue them for delivery in the same transaction; `defer()` does the same at
  commit, for all the events a transaction deferred at once (`engine.events.service`).
- A worker delivers them to `on_event` in batches, per contact in order, inside one transaction
  with the mark that they were delivered (`engine.events.delivery`).
- Event types are declared with `register_event_types` or by an owner in the admin, so pickers
  offer them and events from outside are checked against them (`engine.events.types`).
"""
from __future__ import annotations

from flask import Flask

from engine.events.service import defer, one_wake, record, record_many
from engine.events.types import EventType, EventTypeError, PropertyType

DEFAULTS = {
    "EVENTS_BATCH": 500,  # events per delivery transaction
    # SQLite: after a batch that drained the queue, a delivery job waits this long before the
    # next, so a steady stream is delivered in batches (a transaction costs a worker about
    # 3 ms of CPU whether it delivers one event or fifty) at the price of this much latency.
    "EVENTS_GATHER_SECONDS": 0.05,
}

__all__ = ["EventType", "EventTypeError", "PropertyType", "defer", "init_app", "one_wake",
           "record", "record_many"]


def init_app(app: Flask) -> None:
    from engine.events import models  # noqa: F401  (tables known to migrations)
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
