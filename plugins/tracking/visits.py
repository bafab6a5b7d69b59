"""Visits (sessions), and the touches they give contacts.

A visit is a visitor's run of events with no idle gap longer than the timeout (30 minutes by
default); arriving from a new campaign also starts one, as analytics tools do. A visit's source,
medium, campaign and landing page are what attribution calls a touch. The contact's first and
last touch are the core's (`engine.contacts.touches`): visits are offered to it, with forms and
imports, and it keeps the earliest and the latest.

A visit also keeps the time zone its browser's page views report. Each batch compares the zone
an event brings with the one its visit holds, so a browser seen again in the same zone costs
nothing more; only a new visit or a changed zone is passed on, for a known contact's
`browser_timezone` (`engine.contacts.timezones`).
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, select, update

from engine import bulk
from engine.contacts import touches as core_touches
from engine.db import db, ordered_id
from plugins.tracking import clean
from plugins.tracking.models import Seen, Visit

VISIT_COLUMNS = ("id", "visitor_id", "started_at", "last_seen_at", "landing_url", "referrer",
                 "source", "medium", "campaign", "device", "browser", "time_zone", "page_views",
                 "events")


class Assigned(NamedTuple):
    """What `assign` did: the visits it opened, and `{visitor id: zone}` for the browsers whose
    zone is new to their visit (a new visit's, or a change within one)."""

    new: list[dict[str, Any]]
    zones: dict[str, str]


def assign(events: list[dict[str, Any]], timeout: timedelta) -> Assigned:
    """Give each event (oldest first) its visit, opening new ones; returns the new visits and
    the zones new to their visit (see `Assigned`).

    Works on plain dicts and writes with two statements (one bulk INSERT, one executemany
    UPDATE): a batch can open thousands of visits, and ORM objects would cost more than the SQL.
    """
    table = Visit.__table__
    visitor_ids = {e["visitor_id"] for e in events}
    earliest = min(e["occurred_at"] for e in events)
    current: dict[str, dict[str, Any]] = {}
    for row in db.session.execute(
            select(Visit.id, Visit.visitor_id, Visit.last_seen_at, Visit.source, Visit.medium,
                   Visit.campaign, Visit.time_zone)
            .where(Visit.visitor_id.in_(visitor_ids), Visit.last_seen_at >= earliest - timeout)
            .order_by(Visit.last_seen_at)).mappings():
        current[row["visitor_id"]] = {**row, "page_views": 0, "events": 0, "new": False}
    new: list[dict[str, Any]] = []
    changed: dict[str, dict[str, Any]] = {}
    zones: dict[str, str] = {}
    for e in events:
        visit = current.get(e["visitor_id"])
        props = e["properties"]
        # Where an event came from matters to a new visit, and to one with campaign tags (a
        # new campaign starts a new visit); for the rest, most events, it is not worked out.
        came_from = None
        new_campaign = False
        if props.get("utm") and visit is not None:
            came_from = _came_from(e)
            new_campaign = (visit["source"], visit["medium"], visit["campaign"]) != came_from
        if visit is None or e["occurred_at"] - visit["last_seen_at"] > timeout or new_campaign:
            source, medium, campaign = came_from or _came_from(e)
            visit = {"id": ordered_id(), "visitor_id": e["visitor_id"],
                     "started_at": e["occurred_at"], "last_seen_at": e["occurred_at"],
                     "landing_url": e["url"][:2000], "referrer": props.get("referrer", "")[:2000],
                     "source": source[:200], "medium": medium[:100], "campaign": campaign[:200],
                     "device": props.get("device", ""), "browser": props.get("browser", ""),
                     "time_zone": "", "page_views": 0, "events": 0, "new": True}
            current[e["visitor_id"]] = visit
            new.append(visit)
        elif not visit["new"]:
            changed[visit["id"]] = visit
        zone = e.get("zone")
        if zone and zone != visit["time_zone"]:
            visit["time_zone"] = zones[e["visitor_id"]] = zone
        visit["last_seen_at"] = max(visit["last_seen_at"], e["occurred_at"])
        visit["events"] += 1
        visit["page_views"] += e["type"] == "page_view"
        props["visit"] = visit["id"]
    if new:
        bulk.insert_rows(db.session.connection(), table,
                         [{c: v[c] for c in VISIT_COLUMNS} for v in new])
    if changed:
        db.session.execute(
            update(table).where(table.c.id == bindparam("visit_id")).values(
                last_seen_at=bindparam("seen"), page_views=table.c.page_views + bindparam("views"),
                events=table.c.events + bindparam("count"), time_zone=bindparam("zone")),
            [{"visit_id": v["id"], "seen": v["last_seen_at"], "views": v["page_views"],
              "count": v["events"], "zone": v["time_zone"]} for v in changed.values()])
    return Assigned(new, zones)


def _came_from(event: dict[str, Any]) -> tuple[str, str, str]:
    """(source, medium, campaign) of a cleaned event: its campaign tags, else its referrer."""
    props = event["properties"]
    return clean.source_of(props.get("referrer", ""), props.get("utm", {}),
                           clean.host_and_path(event["url"])[0])


def as_touch(visit: Visit) -> dict[str, Any]:
    """A visit as the core's touch (its channel worked out there)."""
    return core_touches.make(source=visit.source, medium=visit.medium, campaign=visit.campaign,
                             landing_page=visit.landing_url, referrer=visit.referrer,
                             at=visit.started_at)


def first_and_last(visitor_ids: list[str]) -> tuple[Visit, Visit] | None:
    """The earliest and the latest visit of these browsers; None without any."""
    if not visitor_ids:
        return None
    ordered = select(Visit).where(Visit.visitor_id.in_(visitor_ids))
    first = db.session.scalar(ordered.order_by(Visit.started_at).limit(1))
    last = db.session.scalar(ordered.order_by(Visit.started_at.desc()).limit(1))
    return None if first is None or last is None else (first, last)


def save_touches(contact_id: int, first: dict[str, Any], last: dict[str, Any]) -> None:
    """Offer a contact's first and last visit to the core's touches (inside `write()`)."""
    core_touches.remember(contact_id, [first, last])


def update_touches(contact_id: int, visitor_ids: list[str]) -> None:
    """Offer the first and last visit of all a contact's browsers to the core's touches (a
    browser identified later may bring an earlier first visit); inside `write()`."""
    found = first_and_last(visitor_ids)
    if found is not None:
        save_touches(contact_id, as_touch(found[0]), as_touch(found[1]))


def forget(contact_ids: list[int], visitor_ids: list[str]) -> None:
    """Delete erased people's browsers' visits (inside the erasure's write; the core trims
    their touches). Their "active on" rows stay for the unique counts, under a random name."""
    for start in range(0, len(visitor_ids), 500):
        db.session.execute(delete(Visit)
                           .where(Visit.visitor_id.in_(visitor_ids[start:start + 500])))
    subjects = [("v", vid) for vid in visitor_ids] + [("c", str(cid)) for cid in contact_ids]
    for kind, subject in subjects:
        db.session.execute(update(Seen).where(Seen.kind == kind, Seen.subject == subject)
                           .values(subject=secrets.token_hex(16)))


def described(visit_ids: list[str]) -> dict[str, dict[str, Any]]:
    """What the contact page's timeline says of these visits: where each came from and how
    many pages it saw (`filter_timeline_visits`)."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(visit_ids), 500):
        for visit in db.session.scalars(select(Visit).where(
                Visit.id.in_(visit_ids[start:start + 500]))):
            found[visit.id] = {"source": visit.source, "medium": visit.medium,
                               "campaign": visit.campaign, "referrer": visit.referrer,
                               "started_at": visit.started_at, "page_views": visit.page_views,
                               "device": visit.device, "browser": visit.browser}
    return found


def seen_span(events: list[dict[str, Any]]) -> dict[str, tuple[datetime, datetime]]:
    """`{visitor id: (first, last)}`: when each browser of the batch was first and last seen
    in it."""
    seen: dict[str, tuple[datetime, datetime]] = {}
    for e in events:
        at, found = e["occurred_at"], seen.get(e["visitor_id"])
        seen[e["visitor_id"]] = (at, at) if found is None else (min(found[0], at),
                                                                max(found[1], at))
    return seen
