"""A contact's timeline as a person reads it: one sentence per event, grouped by visit, filtered
by type, a keyset page at a time.

The events are `engine.contacts.activity`'s; their words are their types' declarations
(`engine.events.wording`); the visits are whoever keeps them (`filter_timeline_visits`: the
tracking plugin), so the core names no plugin. A page is one indexed range of the
(contact_id, occurred_at) index, however many thousands of events the contact has.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from engine import plugins
from engine.contacts import activity, touches
from engine.db import db, utcnow
from engine.events import wording
from engine.events.models import Activity
from engine.events.types import EventType, all_types

PER_PAGE = 100
MAX_TYPES_LISTED = 60


@dataclass(frozen=True)
class Line:
    """One event in words."""

    id: int
    type: str
    label: str
    at: datetime
    ago: str
    parts: list[wording.Part]
    details: list[tuple[str, str]]


@dataclass
class Group:
    """Consecutive events of one visit under its heading, or events outside any visit."""

    visit: str = ""
    heading: str = ""
    lines: list[Line] = field(default_factory=list)


@dataclass(frozen=True)
class Page:
    groups: list[Group]
    older: int | None  # the cursor of the next (older) page, None on the last one


def ago(moment: datetime, now: datetime) -> str:
    """"3 hours ago"; the exact time goes in the element's title."""
    seconds = int((now - moment).total_seconds())
    if seconds < 60:
        return "just now"
    for size, unit in ((86400 * 365, "year"), (86400 * 30, "month"), (86400 * 7, "week"),
                       (86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def heading(info: dict[str, Any]) -> str:
    """"Visit from Google · newsletter / email / spring · 4 pages"."""
    if not info:
        return "Visit"
    source, medium = str(info.get("source") or ""), str(info.get("medium") or "")
    campaign, referrer = str(info.get("campaign") or ""), str(info.get("referrer") or "")
    ref_host = touches.host_of(referrer)
    came_from = touches.source_name(ref_host) if ref_host and source != "(direct)" else \
        touches.source_name(source)
    parts = [f"Visit from {came_from}" if came_from != "Direct" else "Direct visit"]
    if campaign:
        parts.append(" / ".join(p for p in (source, medium, campaign) if p))
    else:
        channel = touches.channel_of(source, medium, campaign, referrer)
        if channel not in ("Direct", came_from):
            parts.append(channel.lower())
    if isinstance(info.get("page_views"), int):
        count = info["page_views"]
        parts.append(f"{count} page{'s' if count != 1 else ''}")
    return " · ".join(parts)


def types_of(contact_id: int) -> list[tuple[str, str]]:
    """`[(type, label)]` of the kinds of event this contact has, for the filter: the most
    frequent ones (at most `MAX_TYPES_LISTED`), in the order of their labels."""
    declared = all_types()
    names = db.session.scalars(select(Activity.type).where(Activity.contact_id == contact_id)
                               .group_by(Activity.type).order_by(func.count().desc())
                               .limit(MAX_TYPES_LISTED))
    return sorted(((name, _label(declared.get(name), name)) for name in names),
                  key=lambda pair: pair[1].lower())


def _label(declared: EventType | None, name: str) -> str:
    return declared.label if declared else name.replace("_", " ").capitalize()


def page(contact_id: int, *, types: Iterable[str] = (), before: int | None = None,
         per_page: int = PER_PAGE, now: datetime | None = None) -> Page:
    """One page of the timeline, newest first, grouped by visit."""
    wanted = sorted({t for t in types if t})
    events = activity.timeline(contact_id, limit=per_page + 1, before=before, types=wanted)
    older = events[per_page - 1].id if len(events) > per_page else None
    events = events[:per_page]
    declared, moment = all_types(), now or utcnow()
    visit_ids = sorted({str(e.properties.get("visit")) for e in events
                        if isinstance(e.properties, dict) and e.properties.get("visit")})
    visits = plugins.current().filter("filter_timeline_visits",
                                      {vid: {} for vid in visit_ids}, contact_id=contact_id) \
        if visit_ids else {}
    groups: list[Group] = []
    for event in events:
        props = event.properties if isinstance(event.properties, dict) else {}
        visit = str(props.get("visit") or "")
        if not groups or groups[-1].visit != visit or not visit:
            info = visits.get(visit) if visit else None
            groups.append(Group(visit, heading(info or {}) if visit else ""))
        kind = declared.get(event.type)
        groups[-1].lines.append(Line(
            event.id, event.type, _label(kind, event.type), event.occurred_at,
            ago(event.occurred_at, moment), wording.sentence(kind, event.type, props, event.url),
            wording.details(props, event.url)))
    return Page(_merged(groups), older)


def _merged(groups: list[Group]) -> list[Group]:
    """Events outside visits that follow each other share one unheaded group."""
    merged: list[Group] = []
    for group in groups:
        if merged and not group.visit and not merged[-1].visit:
            merged[-1].lines.extend(group.lines)
        else:
            merged.append(group)
    return merged
