"""Retention: anonymous visitors' tracking data is deleted after the configured number of days.

Known contacts' history is kept (it is their timeline, erased with them on request); what an
anonymous browser did is only useful for a while, and keeping it for ever is what makes other
tools' tracking tables grow without bound. The daily and monthly roll-ups hold only counts and
are kept. The ids of stored events (which make storing idempotent) go after the same time: a
copy of an event arriving later than that is no longer recognised. Deletes run in chunks so that
web requests never wait long for SQLite's write lock.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete

from engine.contacts import activity, identity
from engine.db import delete_in_chunks, utcnow, write
from plugins.tracking import clean
from plugins.tracking.models import Seen, StoredEvent, Visit
from plugins.tracking.settings import settings


def prune(days: int | None = None) -> dict[str, int]:
    """Delete anonymous events, visits and visitors last seen more than `days` ago."""
    days = int(days if days is not None else settings()["retention_days"])
    cutoff = utcnow() - timedelta(days=days)
    result = {
        "events": activity.prune_anonymous(cutoff, clean.EVENT_TYPES),
        "visits": delete_in_chunks(Visit, Visit.last_seen_at < cutoff,
                                   Visit.visitor_id.not_in(identity.identified_visitors())),
        "visitors": identity.prune_anonymous_visitors(cutoff),
        "event_ids": delete_in_chunks(StoredEvent,
                                      StoredEvent.id < clean.ids_before(cutoff.timestamp())),
    }
    day = cutoff.date().isoformat()
    with write() as session:  # who-was-active lists of finished periods (their counts stay)
        result["active_lists"] = session.execute(delete(Seen).where(
            Seen.kind == "v", ((Seen.period < day) & (Seen.period.like("____-__-__")))
            | (Seen.period < day[:7]) & (Seen.period.like("____-__")))).rowcount
    return result
