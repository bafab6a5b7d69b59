"""Storing events: from the cleaned beacon form to timeline rows, visits, roll-ups, touches and
known contacts' browser time zones, all in one transaction per batch, recorded on the engine's
event stream (`engine.events`), which delivers them to `on_event` with everything else
contacts do.

The same function serves the periodic drain of the Redis buffer (thousands of events at a time)
and the hand-over's direct write when Redis is unreachable, so both paths store exactly the same
thing, and each event once: its id, given at the beacon, is claimed in `tracking_stored_events`
inside the batch's transaction, and an event whose id is already there is left out (see
`models.StoredEvent`).
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from engine import bulk
from engine.contacts import identity, timezones
from engine.db import db, write
from engine.events import record_many
from plugins.tracking import clean, rollups, visits
from plugins.tracking.models import StoredEvent
from plugins.tracking.settings import settings

log = logging.getLogger("magnet.tracking")


def to_row(event: dict[str, Any], keep_bots: bool = False) -> dict[str, Any] | None:
    """The timeline row for one queued event; None for a bot the cheap checks let through."""
    if event["t"] not in clean.EVENT_TYPES:
        raise ValueError("unknown event type")
    kind, browser, system, is_bot = clean.device(str(event.get("a", "")))
    if is_bot and not keep_bots:
        return None
    props: dict[str, Any] = {"device": kind, "browser": browser, "os": system,
                             "path": clean.host_and_path(event["u"])[1]}
    for key, name in (("r", "referrer"), ("l", "language"), ("ip", "ip"), ("h", "href"),
                      ("x", "label"), ("f", "form"), ("n", "title")):
        if event.get(key):
            props[name] = event[key]
    campaign = clean.utm(event["u"])
    if campaign:
        props["utm"] = campaign
    if event.get("ns"):
        props["noscript"] = True
    return {"type": event["t"], "visitor_id": event["v"], "url": event["u"], "properties": props,
            "occurred_at": datetime.fromtimestamp(float(event["ts"]), UTC),
            "id": str(event.get("id") or "")[:32], "zone": str(event.get("z") or "")[:64]}


def first_stores(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows not stored before (inside the batch's `write()`): each id is inserted with
    `ON CONFLICT DO NOTHING RETURNING`, so the ids returned are exactly the new ones. Events
    queued before ids existed have none and are kept."""
    ids = {r["id"] for r in rows if r["id"]}
    if not ids:
        return rows
    new = {i for (i,) in bulk.insert_rows(db.session.connection(), StoredEvent.__table__,
                                          [{"id": i} for i in sorted(ids)],
                                          returning=("id",), skip_conflicts=("id",))}
    kept = []
    for row in rows:
        if not row["id"]:
            kept.append(row)
        elif row["id"] in new:
            new.discard(row["id"])  # a second copy within the batch is left out too
            kept.append(row)
    return kept


def store(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Store a batch of queued events; returns the timeline rows written (oldest first)."""
    options = settings()
    rows = []
    for event in events:
        try:
            row = to_row(event, keep_bots=not options["filter_bots"])
        except (KeyError, TypeError, ValueError):  # a queued item of an unknown shape
            log.warning("tracking: dropped a malformed queued event")
            continue
        if row is not None:
            rows.append(row)
    if not rows:
        return []
    rows.sort(key=lambda r: r["occurred_at"])
    timeout = timedelta(minutes=int(options["session_minutes"]))
    with write():
        rows = first_stores(rows)
        if not rows:
            return []
        known = identity.contacts_of({r["visitor_id"] for r in rows})
        for row in rows:
            row["contact_id"] = known.get(row["visitor_id"])
        new_visits, zones = visits.assign(rows, timeout)
        record_many(rows)  # on the timeline, and on their way to `on_event`
        identity.touch_many(visits.seen_span(rows))
        rollups.add(rows, new_visits)
        for contact_id in {known[v["visitor_id"]] for v in new_visits if v["visitor_id"] in known}:
            visits.update_touches(contact_id, identity.visitors_of(contact_id))
        # Only zones new to their visit: a known browser in its usual zone costs nothing here.
        timezones.remember_browser_zones({known[v]: zone for v, zone in zones.items()
                                          if v in known})
    return rows
