"""Storing events: from the cleaned beacon form to timeline rows, visits, roll-ups and touches,
all in one transaction per batch, then one `on_event` call for the whole batch.

The same function serves the periodic drain of the Redis buffer (thousands of events at a time)
and the beacon endpoint's direct write when Redis is unreachable (one event), so both paths
store exactly the same thing.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.contacts import activity, identity
from engine.db import write
from engine.plugins import current
from plugins.tracking import clean, rollups, visits
from plugins.tracking.settings import settings

log = logging.getLogger("magnet.tracking")


def to_row(event: dict[str, Any], keep_bots: bool = False) -> dict[str, Any] | None:
    """The timeline row for one queued event; None for a bot the cheap checks let through."""
    if event["t"] not in clean.EVENT_TYPES:
        raise ValueError("unknown event type")
    kind, browser, system, is_bot = clean.device(str(event.get("a", "")))
    if is_bot and not keep_bots:
        return None
    props: dict[str, Any] = {"device": kind, "browser": browser, "os": system}
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
            "occurred_at": datetime.fromtimestamp(float(event["ts"]), UTC)}


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
        known = identity.contacts_of({r["visitor_id"] for r in rows})
        for row in rows:
            row["contact_id"] = known.get(row["visitor_id"])
        new_visits = visits.assign(rows, timeout)
        activity.record_many(rows)
        identity.touch_many(visits.last_seen(rows))
        rollups.add(rows, new_visits)
        for contact_id in {known[v["visitor_id"]] for v in new_visits if v["visitor_id"] in known}:
            visits.update_touches(contact_id, identity.visitors_of(contact_id))
    current().call("on_event", events=rows)
    return rows
