"""Segments: defining them, building them, and keeping them current event by event.

- `save()` checks a definition (every condition compiles, no segment depends on itself through
  others), stores it with a new version and queues its build through the outbox. The segment
  is usable at once, marked "building" until the build has gone through every contact.
- The build (`segments.build`) syncs members a range of contact ids at a time, each range one
  short transaction of two set statements, and reports its progress; an edit made meanwhile
  supersedes it (the build of the old version stops).
- `on_event` (hooks.py) re-checks, for each event, only the segments that depend on its type,
  field or segment, and only for the contacts the events concern (`Index`).
- `tick()` re-checks time-bound conditions ("in the last 30 days", "birthday within 7 days")
  for the contacts whose answer the passing of time may have changed since the last tick.
"""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select, text, union

from engine.contacts.models import Contact
from engine.db import db, utcnow, write
from engine.jobs import job, outbox
from engine.segments.compiler import compile_definition
from engine.segments.conditions import Compiled, ConditionError
from engine.segments.membership import reevaluate, sync_range
from engine.segments.models import Segment, SegmentMember

BUILD_CHUNK = 50_000  # contact ids per build transaction
TICK_SECONDS = 60
# Events after which a contact may match any segment, or must leave them all; for a merge
# and its undoing, the other contact too (named in the event's properties).
EVERY_SEGMENT = frozenset({"contact_created", "contact_merged", "merge_undone",
                           "visitor_identified"})
OTHER_CONTACT = {"contact_merged": "merged", "merge_undone": "restored"}


class SegmentError(ValueError):
    """A segment that cannot be saved; the message says why."""


def save(name: str, definition: dict[str, Any], description: str = "",
         segment_id: int | None = None) -> Segment:
    """Create or change a segment and queue its build (inside or outside a `write()`)."""
    name = " ".join((name or "").split())[:200]  # one space between words, none around
    if not name:
        raise SegmentError("Give the segment a name.")
    try:
        compiled = compile_definition(definition)
    except ConditionError as exc:
        raise SegmentError(str(exc)) from None
    with write() as session:
        same_name = _named(session, name)
        if same_name is not None and same_name != segment_id:
            raise SegmentError(f"A segment named “{name}” exists already.")
        segment = session.get(Segment, segment_id) if segment_id else Segment(version=0)
        if segment is None:
            raise SegmentError("That segment no longer exists.")
        if segment_id and _reaches(compiled.segments, segment_id):
            raise SegmentError("A segment cannot depend on itself, even through others.")
        segment.name, segment.description = name, (description or "").strip()[:1000]
        segment.definition, segment.version = definition, segment.version + 1
        segment.status, segment.progress, segment.updated_at = "building", 0.0, utcnow()
        if segment.checked_at is None:
            segment.checked_at = utcnow()
        session.add(segment)
        session.flush()
        outbox.add("segments.build", segment_id=segment.id, version=segment.version)
    forget_index()
    return segment


def _reaches(start: frozenset[int], target: int) -> bool:
    """Whether following "in segment" conditions from `start` comes back to `target`."""
    seen, frontier = set(), set(start)
    while frontier:
        if target in frontier:
            return True
        seen |= frontier
        rows = db.session.execute(select(Segment.id, Segment.definition)
                                  .where(Segment.id.in_(frontier))).all()
        frontier = set()
        for _, definition in rows:
            try:
                frontier |= compile_definition(definition).segments
            except ConditionError:
                continue
        frontier -= seen
    return False


def delete_segment(segment_id: int) -> None:
    with write() as session:
        session.query(SegmentMember).filter(SegmentMember.segment_id == segment_id).delete()
        session.query(Segment).filter(Segment.id == segment_id).delete()
    forget_index()


@job("segments.build")
def build(segment_id: int, version: int) -> None:
    """Sync every contact id range with the segment's definition, one transaction each."""
    segment = db.session.get(Segment, segment_id)
    if segment is None or segment.version != version:
        return  # deleted, or edited since: that version's build does the work
    compiled = compile_definition(segment.definition)
    announce = segment.built_version > 0  # the first build is where membership starts
    low, top = db.session.execute(select(func.min(Contact.id), func.max(Contact.id))).one()
    low, top = (low or 0), (top or 0) + 1
    for start in range(low, top, BUILD_CHUNK):
        with write() as session:
            current = session.get(Segment, segment_id)
            if current is None or current.version != version:
                return
            if not announce:
                _commit_without_waiting_for_disk(session)
            sync_range(current, compiled, start, start + BUILD_CHUNK, announce)
            current.progress = min(1.0, (start + BUILD_CHUNK - low) / max(1, top - low))
    with write() as session:
        current = session.get(Segment, segment_id)
        if current is not None and current.version == version:
            current.status, current.progress, current.built_version = "ready", 1.0, version


def _commit_without_waiting_for_disk(session: Any) -> None:
    """A first build's range announces nothing, and a build cut short is run again (the outbox
    hands its row over when the lease ends; a range found with members is synced with them),
    so on PostgreSQL its commit need not wait for the disk: a crash could only lose the last
    ranges, as if it had come a moment earlier. The transaction that marks the segment ready
    waits as usual, and the ranges before it are on disk with it (the log is written in
    order). SQLite's commits are already `synchronous=NORMAL`."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit TO OFF"))


def rebuild(segment_id: int) -> Segment:
    """Build a segment again from scratch (`magnet segments rebuild NAME`)."""
    with write() as session:
        segment = session.get(Segment, segment_id)
        if segment is None:
            raise SegmentError("No such segment.")
        segment.version += 1
        segment.status, segment.progress = "building", 0.0
        outbox.add("segments.build", segment_id=segment.id, version=segment.version)
    forget_index()
    return segment


# --- incremental ----------------------------------------------------------------------------

@dataclass
class Index:
    """Which segments each kind of change can affect, for this process's current segments."""

    stamp: Any = None
    segments: dict[int, tuple[Segment, Compiled]] = field(default_factory=dict)
    by_event: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    by_field: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    by_segment: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    every_change: set[int] = field(default_factory=set)

    def affected(self, event: dict[str, Any]) -> set[int]:
        kind, props = event["type"], event.get("properties") or {}
        if kind in EVERY_SEGMENT:
            return set(self.segments)
        found = set(self.by_event.get(kind, ())) | self.every_change
        if kind == "field_changed":
            found |= self.by_field.get(str(props.get("field")), set())
        if kind in ("segment_entered", "segment_left"):
            found |= self.by_segment.get(props.get("segment_id"), set())
        return found


INDEX_TTL = 1.0  # seconds a process trusts its index before checking segments' versions


def index() -> Index:
    """The dependency index, rebuilt when any segment was added, edited or deleted."""
    held: Index | None = current_app.extensions.get("magnet.segments.index")
    checked = current_app.extensions.get("magnet.segments.index_checked", 0.0)
    if held is not None and time.monotonic() - checked < INDEX_TTL:
        return held
    # updated_at too: SQLite gives a deleted segment's id to the next one made, at version 1
    stamp = tuple(db.session.execute(select(Segment.id, Segment.version, Segment.updated_at)
                                     .order_by(Segment.id)))
    current_app.extensions["magnet.segments.index_checked"] = time.monotonic()
    if held is not None and held.stamp == stamp:
        return held
    fresh = Index(stamp=stamp)
    for segment in db.session.scalars(select(Segment)):
        try:
            compiled = compile_definition(segment.definition)
        except ConditionError:  # a plugin's condition whose plugin is off: nothing to keep
            continue
        db.session.expunge(segment)
        fresh.segments[segment.id] = (segment, compiled)
        for kind in compiled.events:
            fresh.by_event[kind].add(segment.id)
        for name in compiled.fields:
            fresh.by_field[name].add(segment.id)
        for other in compiled.segments:
            fresh.by_segment[other].add(segment.id)
        if compiled.every_change:
            fresh.every_change.add(segment.id)
    current_app.extensions["magnet.segments.index"] = fresh
    return fresh


def forget_index() -> None:
    current_app.extensions.pop("magnet.segments.index", None)


def apply_events(batch: list[dict[str, Any]]) -> dict[int, tuple[int, int]]:
    """Re-check the segments these events can change, for their contacts (inside the
    delivery's `write()`). Returns {segment id: (entered, left)} where anything changed."""
    held = index()
    if not held.segments:
        return {}
    todo: dict[int, set[int]] = defaultdict(set)
    for event in batch:
        concerned = {event.get("contact_id")}
        other = OTHER_CONTACT.get(event["type"])
        if other:
            concerned.add((event.get("properties") or {}).get(other))
        concerned = {c for c in concerned if isinstance(c, int)}
        if concerned:
            for segment_id in held.affected(event):
                todo[segment_id] |= concerned
    changed = {}
    for segment_id, contacts in todo.items():
        segment, compiled = held.segments[segment_id]
        result = reevaluate(segment, compiled, contacts)
        if result != (0, 0):
            changed[segment_id] = result
    return changed


# --- time -------------------------------------------------------------------------------------

@job("segments.tick", every=TICK_SECONDS)
def tick() -> int:
    """Re-check time-bound conditions for the contacts whose answer may have changed since each
    segment's last check; returns how many contacts were re-checked."""
    now, total = utcnow(), 0
    for segment_id, (segment, compiled) in index().segments.items():
        if not compiled.candidates:
            continue
        since = db.session.scalar(select(Segment.checked_at).where(Segment.id == segment_id)) \
            or now - timedelta(seconds=TICK_SECONDS)
        query = union(*(candidates(since, now) for candidates in compiled.candidates))
        contacts = {row[0] for row in db.session.execute(query) if row[0] is not None}
        with write() as session:
            reevaluate(segment, compiled, contacts)
            session.execute(Segment.__table__.update().where(Segment.id == segment_id)
                            .values(checked_at=now))
        total += len(contacts)
    return total


# --- reading ----------------------------------------------------------------------------------

def by_name(name: str) -> Segment | None:
    """The segment of this name, in any letter case (names are unique regardless of case)."""
    segment_id = _named(db.session, name)
    return db.session.get(Segment, segment_id) if segment_id is not None else None


def _named(session: Any, name: str) -> int | None:
    """The id of the segment called `name` whatever the letter case and spacing. Compared in
    Python (`casefold`): SQLite's `lower()` folds ASCII letters only, and a site has tens of
    segments, not thousands."""
    wanted = " ".join((name or "").split()).casefold()
    return next((segment_id for segment_id, existing in session.execute(
        select(Segment.id, Segment.name)) if existing.casefold() == wanted), None)


def all_segments() -> list[Segment]:
    return list(db.session.scalars(select(Segment).order_by(Segment.name)))


def member_count(segment_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(SegmentMember).where(
        SegmentMember.segment_id == segment_id)) or 0


def used_by(segment_id: int) -> list[Segment]:
    """The segments whose conditions name this one ("in segment …"), which deleting it would
    change. Read now, not from the index a process keeps for a second."""
    return _depending(lambda compiled: segment_id in compiled.segments)


def using_event_type(name: str) -> list[Segment]:
    """The segments whose conditions depend on events of this type ("did …"): if the type
    were no longer declared, the builder could neither show nor save their conditions."""
    return _depending(lambda compiled: name in compiled.events)


def _depending(test: Callable[[Compiled], bool]) -> list[Segment]:
    found = []
    for segment in all_segments():
        try:
            if test(compile_definition(segment.definition)):
                found.append(segment)
        except ConditionError:  # a plugin's condition whose plugin is off
            continue
    return found


def count_matching(definition: dict[str, Any]) -> int:
    """How many contacts a definition matches now (the builder's live count)."""
    compiled = compile_definition(definition)
    return db.session.scalar(select(func.count()).select_from(Contact).where(
        compiled.bulk if compiled.bulk is not None else compiled.sql)) or 0


def members(segment_id: int, after: int = 0, limit: int = 50) -> list[tuple[Contact, Any]]:
    """A page of members after contact id `after` (keyset), with when each entered."""
    return list(db.session.execute(
        select(Contact, SegmentMember.entered_at)
        .join(SegmentMember, SegmentMember.contact_id == Contact.id)
        .where(SegmentMember.segment_id == segment_id, Contact.id > after)
        .order_by(Contact.id).limit(limit)).all())


def member_ids(segment_id: int) -> list[int]:
    """Every member's contact id (an audience for a mailing)."""
    return list(db.session.scalars(select(SegmentMember.contact_id).where(
        SegmentMember.segment_id == segment_id).order_by(SegmentMember.contact_id)))


def of_contact(contact_id: int) -> list[tuple[Segment, Any]]:
    """The segments a contact is in, with since when."""
    return list(db.session.execute(
        select(Segment, SegmentMember.entered_at)
        .join(SegmentMember, SegmentMember.segment_id == Segment.id)
        .where(SegmentMember.contact_id == contact_id).order_by(Segment.name)).all())
