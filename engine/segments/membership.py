"""Keeping membership right: for a few contacts after an event, for everyone after an edit.

Both run the segment's own SQL, so an incremental update can never disagree with a build:
- `reevaluate(segment, contact_ids)`: the contacts among `contact_ids` that match now, against
  those that are members now; the difference enters or leaves, each with a `segment_entered` /
  `segment_left` event in the same transaction;
- `sync_range(segment, low, high)`: the same for every contact with an id in [low, high), with
  two set statements (DELETE … WHERE NOT, INSERT … SELECT), never a loop over contacts.
Inserts never fail on a row a concurrent writer added first (`ON CONFLICT DO NOTHING`), and an
event is recorded only for a row this statement really added or removed.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, literal, select

from engine import events
from engine.contacts.models import Contact
from engine.contacts.store import dialect_insert
from engine.db import db, utcnow
from engine.segments.conditions import Compiled
from engine.segments.models import Segment, SegmentMember

C = Contact.__table__.c
M = SegmentMember.__table__


def _insert(rows: list[dict[str, Any]]) -> list[int]:
    """Add members; the ids of the contacts that were not members already."""
    if not rows:
        return []
    statement = dialect_insert(db.session.get_bind().dialect.name)(M) \
        .on_conflict_do_nothing().returning(M.c.contact_id)
    return [row[0] for row in db.session.execute(statement, rows)]


def _announce(segment: Segment, entered: list[int], left: list[int],
              moment: datetime) -> None:
    props = {"segment": segment.name, "segment_id": segment.id}
    events.record_many([{"type": "segment_entered", "contact_id": c, "properties": props,
                         "occurred_at": moment} for c in entered] +
                       [{"type": "segment_left", "contact_id": c, "properties": props,
                         "occurred_at": moment} for c in left])


def reevaluate(segment: Segment, compiled: Compiled, contact_ids: set[int]) -> tuple[int, int]:
    """Bring these contacts' membership up to date (inside `write()`); (entered, left)."""
    if not contact_ids:
        return 0, 0
    ids = sorted(contact_ids)
    matching = set(db.session.scalars(select(C.id).where(C.id.in_(ids), compiled.sql)))
    current = set(db.session.scalars(select(M.c.contact_id).where(
        M.c.segment_id == segment.id, M.c.contact_id.in_(ids))))
    now = utcnow()
    entered = _insert([{"segment_id": segment.id, "contact_id": c, "entered_at": now}
                       for c in sorted(matching - current)])
    leaving = sorted(current - matching)
    left = list(db.session.scalars(delete(M).where(
        M.c.segment_id == segment.id, M.c.contact_id.in_(leaving)).returning(M.c.contact_id))) \
        if leaving else []
    _announce(segment, entered, left, now)
    return len(entered), len(left)


def sync_range(segment: Segment, compiled: Compiled, low: int, high: int,
               announce: bool) -> tuple[int, int]:
    """Make the members with ids in [low, high) exactly the contacts matching (inside
    `write()`); announce the changes as events unless this is the segment's first build.

    A range without members yet (every range of a first build) has nobody to remove and
    nobody to skip: one index probe spares the DELETE and the INSERT's check against the
    members, and `ON CONFLICT DO NOTHING` still leaves alone a member an event added since."""
    in_range = and_(C.id >= low, C.id < high)
    test = compiled.bulk if compiled.bulk is not None else compiled.sql
    now = utcnow()
    in_members = and_(M.c.segment_id == segment.id, M.c.contact_id >= low, M.c.contact_id < high)
    held = db.session.scalar(select(literal(1)).where(in_members).limit(1)) is not None
    bounds = {"build_low": low, "build_high": high}  # the conditions' own range (BUILD_LOW)
    matching = select(literal(segment.id), C.id, literal(now, M.c.entered_at.type)) \
        .where(in_range, test).params(bounds)
    left: list[int] = []
    if held:
        staying = select(C.id).where(in_range, test).params(bounds)
        left = list(db.session.scalars(delete(M).where(in_members, M.c.contact_id.notin_(staying))
                                       .returning(M.c.contact_id)))
        matching = matching.where(~exists(select(M.c.contact_id).where(
            M.c.segment_id == segment.id, M.c.contact_id == C.id)))
    statement = dialect_insert(db.session.get_bind().dialect.name)(M) \
        .from_select(["segment_id", "contact_id", "entered_at"], matching) \
        .on_conflict_do_nothing().returning(M.c.contact_id)
    entered = list(db.session.scalars(statement))
    if announce:
        _announce(segment, entered, left, now)
    return len(entered), len(left)
