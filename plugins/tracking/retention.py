"""Retention: anonymous visitors' tracking data is deleted after the configured number of days.

Known contacts' history is kept (it is their timeline, erased with them on request); what an
anonymous browser did is only useful for a while, and keeping it for ever is what makes other
tools' tracking tables grow without bound. The daily and monthly roll-ups hold only counts and
are kept. Deletes run in chunks so that web requests never wait long for SQLite's write lock.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select

from engine.contacts.models import Activity, Visitor
from engine.db import utcnow, write
from plugins.tracking import clean
from plugins.tracking.models import Seen, Visit
from plugins.tracking.settings import settings

CHUNK = 5000


def _delete_in_chunks(model: type, *conditions: object) -> int:
    key = model.__mapper__.primary_key[0]  # type: ignore[attr-defined]
    total = 0
    while True:
        with write() as session:
            ids = select(key).where(*conditions).limit(CHUNK).scalar_subquery()
            removed = session.execute(delete(model).where(key.in_(ids))).rowcount
        total += removed
        if removed < CHUNK:
            return total


def prune(days: int | None = None) -> dict[str, int]:
    """Delete anonymous events, visits and visitors last seen more than `days` ago."""
    days = int(days if days is not None else settings()["retention_days"])
    cutoff = utcnow() - timedelta(days=days)
    identified = select(Visitor.id).where(Visitor.contact_id.is_not(None))
    result = {
        "events": _delete_in_chunks(
            Activity, Activity.contact_id.is_(None), Activity.visitor_id.is_not(None),
            Activity.type.in_(clean.EVENT_TYPES), Activity.occurred_at < cutoff),
        "visits": _delete_in_chunks(
            Visit, Visit.last_seen_at < cutoff, Visit.visitor_id.not_in(identified)),
        "visitors": _delete_in_chunks(
            Visitor, Visitor.contact_id.is_(None), Visitor.last_seen < cutoff),
    }
    day = cutoff.date().isoformat()
    with write() as session:  # who-was-active lists of finished periods (their counts stay)
        result["active_lists"] = session.execute(delete(Seen).where(
            Seen.kind == "v", ((Seen.period < day) & (Seen.period.like("____-__-__")))
            | (Seen.period < day[:7]) & (Seen.period.like("____-__")))).rowcount
    return result
