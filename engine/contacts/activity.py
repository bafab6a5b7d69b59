"""The activity timeline: typed events, anonymous or a contact's, written inside the caller's
`write()` so an event is stored exactly when what caused it is."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select

from engine.contacts.store import connection
from engine.db import db, delete_in_chunks, utcnow
from engine.events.models import Activity

ACTIVITIES_INSERT = insert(Activity.__table__)


def record(type: str, *, contact_id: int | None = None, visitor_id: str | None = None,
           url: str = "", properties: dict[str, Any] | None = None,
           occurred_at: datetime | None = None) -> Activity:
    """Add one event to the timeline (call inside `engine.db.write()`)."""
    row = Activity(type=type, contact_id=contact_id, visitor_id=visitor_id, url=url[:4000],
                   properties=properties or {}, occurred_at=occurred_at or utcnow())
    db.session.add(row)
    return row


def record_many(rows: list[dict[str, Any]]) -> int:
    """Add many events in one multi-row INSERT (call inside `engine.db.write()`).

    Each dict has the keyword arguments of `record()` plus `type`; returns how many were added.
    """
    if not rows:
        return 0
    now = utcnow()
    values = [{"type": r["type"], "contact_id": r.get("contact_id"),
               "visitor_id": r.get("visitor_id"), "url": (r.get("url") or "")[:4000],
               "properties": r.get("properties") or {}, "occurred_at": r.get("occurred_at") or now}
              for r in rows]
    connection().execute(ACTIVITIES_INSERT, values)  # Core: no ORM bookkeeping per row
    return len(values)


def timeline(contact_id: int, limit: int = 200, before: int | None = None) -> list[Activity]:
    """A contact's events, newest first (merged contacts' events moved here are included).

    `before` is the id of the oldest event already shown: the page continues strictly after
    it in (occurred_at, id) order, a keyset on the (contact_id, occurred_at) index, so the
    thousandth page of a busy contact costs what the first does.
    """
    query = select(Activity).where(Activity.contact_id == contact_id)
    if before is not None:
        edge = db.session.get(Activity, before)
        if edge is None:
            return []
        query = query.where(or_(Activity.occurred_at < edge.occurred_at,
                                and_(Activity.occurred_at == edge.occurred_at,
                                     Activity.id < edge.id)))
    return list(db.session.scalars(query.order_by(Activity.occurred_at.desc(),
                                                  Activity.id.desc()).limit(limit)))


def prune_anonymous(before: datetime, types: Iterable[str]) -> int:
    """Delete anonymous activity of the given types older than `before` (retention); a known
    contact's timeline is kept until the contact is erased."""
    return delete_in_chunks(Activity, Activity.contact_id.is_(None),
                            Activity.visitor_id.is_not(None), Activity.type.in_(list(types)),
                            Activity.occurred_at < before)
