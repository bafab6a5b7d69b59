"""Scores following the event stream: `apply_events` runs inside the delivery's `write()` for
each delivered batch (`on_event`), and everything it writes commits with the batch's mark of
delivery, or nothing does.

For a batch it
1. finds, in Python, what can change: the engagement rules each event's type has (and whose
   filters it passes), the fit rules that depend on its type, field or segment (as segments do,
   `RuleIndex`), merges;
2. moves a merged contact's points to the contact kept (`merge`);
3. gives the engagement points (`engagement.award`) and re-checks the fit rules
   (`fit.reevaluate`, `sets.refresh_fit`), notes the latest activity;
4. for each contact whose fit or engagement changed, records one `score_changed` event and lets
   the stages follow (`stages.advance`);
5. for delivered `stage_changed` events: notes when a contact first qualified (whoever moved
   them) and hands them to sales (`handoff.handle`).
The number of statements depends on what the batch changes, not on its number of events.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import case, delete, literal, select, update

from engine import events as event_stream
from engine.db import UTCDateTime, db, utcnow
from engine.events.models import Activity
from engine.segments.conditions import Compiled
from engine.segments.service import EVERY_SEGMENT, OTHER_CONTACT
from plugins.scoring import engagement, fit, handoff, recalc, stages
from plugins.scoring.models import (
    ContactScore,
    FitHistory,
    FitMatch,
    Handoff,
    ScoreAward,
    ScoringRule,
)
from plugins.scoring.rules import ACTIVE_TYPES, RuleError, fit_compiled
from plugins.scoring.sets import (
    S,
    among,
    ensure_scores,
    lock_scores,
    refresh_acc,
    refresh_fit,
    score_changed,
)
from plugins.scoring.state import State, held, shared

INDEX_KEY = "magnet.scoring.index"


@dataclass
class RuleIndex:
    """This process's active rules, arranged by what can set them off."""

    stamp: Any = None
    engagement: dict[str, list[ScoringRule]] = field(default_factory=lambda: defaultdict(list))
    fit: dict[int, tuple[ScoringRule, Compiled]] = field(default_factory=dict)
    by_event: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    by_field: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    by_segment: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    every_change: set[int] = field(default_factory=set)
    inactivity: bool = False

    @property
    def active(self) -> bool:
        return bool(self.engagement or self.fit or self.inactivity)

    def fit_affected(self, event: dict[str, Any]) -> set[int]:
        """The fit rules whose answer this event can change."""
        kind, props = event["type"], event.get("properties") or {}
        if kind in EVERY_SEGMENT:
            return set(self.fit)
        found = self.by_event.get(kind, set()) | self.every_change
        if kind == "field_changed":
            found = found | self.by_field.get(str(props.get("field")), set())
        if kind in ("segment_entered", "segment_left"):
            found = found | self.by_segment.get(props.get("segment_id"), set())
        return found


def rule_index() -> RuleIndex:
    """The index, rebuilt when a rule was added, edited, switched on or off, or deleted.

    The rules' versions are read in every delivery's transaction (one small query per batch):
    trusting an index for even a second would let a worker score events with a rule's old
    version after its recalculation had already read them, and nothing would ever correct
    that."""
    held_index: RuleIndex | None = current_app.extensions.get(INDEX_KEY)
    R = ScoringRule.__table__.c
    stamp = tuple(db.session.execute(select(R.id, R.version, R.active, R.status, R.updated_at)
                                     .order_by(R.id)))
    if held_index is not None and held_index.stamp == stamp:
        return held_index
    fresh = RuleIndex(stamp=stamp)
    for rule in db.session.scalars(select(ScoringRule).where(
            ScoringRule.active.is_(True), ScoringRule.status != "deleting")):
        db.session.expunge(rule)
        if rule.kind == "engagement":
            fresh.engagement[rule.event].append(rule)
        elif rule.kind == "inactivity":
            fresh.inactivity = True
        elif rule.kind == "fit":
            try:
                compiled = fit_compiled(rule.definition)
            except RuleError:  # a condition whose plugin is off: the rule waits
                continue
            fresh.fit[rule.id] = (rule, compiled)
            for kind in compiled.events:
                fresh.by_event[kind].add(rule.id)
            for name in compiled.fields:
                fresh.by_field[name].add(rule.id)
            for other in compiled.segments:
                fresh.by_segment[other].add(rule.id)
            if compiled.every_change:
                fresh.every_change.add(rule.id)
    current_app.extensions[INDEX_KEY] = fresh
    return fresh


def forget_index() -> None:
    """Make this process read the rules again at its next batch."""
    current_app.extensions.pop(INDEX_KEY, None)


def _concerned(event: dict[str, Any]) -> set[int]:
    """The contacts an event concerns: its own, and for a merge or its undoing the other."""
    found = {event.get("contact_id")}
    other = OTHER_CONTACT.get(event["type"])
    if other:
        found.add((event.get("properties") or {}).get(other))
    return {c for c in found if isinstance(c, int) and not isinstance(c, bool)}


def apply_events(events: list[dict[str, Any]]) -> None:
    """Bring scores, stages and hand-offs up to date with a delivered batch (inside the
    delivery's `write()`)."""
    shared()  # a rule is not saved, nor a recalculation run, while this batch is scored
    index = rule_index()
    staged = [e for e in events if e["type"] == "stage_changed" and e.get("contact_id")]
    merges = [e for e in events if e["type"] in OTHER_CONTACT and len(_concerned(e)) == 2]
    if not index.active and not staged and not merges:
        return
    changed = _score(events, index, merges)
    if index.active:
        engagement.note_activity(events, ACTIVE_TYPES, create=index.inactivity)
    stages.advance(changed)
    stages.note_qualified([e["contact_id"] for e in staged
                           if (e.get("properties") or {}).get("new") in stages.QUALIFIED])
    handoff.handle(staged)


def _score(events: list[dict[str, Any]], index: RuleIndex,
           merges: list[dict[str, Any]]) -> list[int]:
    """Merges, engagement points, fit matches; `score_changed` for each contact whose fit or
    engagement changed, whose ids it returns."""
    found = engagement.candidates(events, index.engagement)
    todo: dict[int, set[int]] = defaultdict(set)
    for event in events:
        affected = index.fit_affected(event) if index.fit else set()
        if affected:
            concerned = _concerned(event)
            for rule_id in affected:
                todo[rule_id] |= concerned
    gone = {e["properties"]["merged"] for e in merges if e["type"] == "contact_merged"}
    parties = {c for e in merges for c in _concerned(e)} - gone
    known_now = {e["contact_id"] for e in events
                 if e["type"] == "visitor_identified" and e.get("contact_id")} - gone
    maybe = ({c.contact_id for c in found} | {c for cs in todo.values() for c in cs}
             | parties | known_now) - gone
    if not maybe:
        return []
    state = held()
    lock_scores(maybe)  # in id order: another delivery (after a merge) waits its turn
    before = scores(maybe)
    for event in merges:
        if event["type"] == "contact_merged":
            merge(event["contact_id"], event["properties"]["merged"])
        else:
            unmerge(event["contact_id"], event["properties"]["restored"])
    reasons: dict[int, set[str]] = defaultdict(set)
    for contact_id, names in engagement.award(found, state).items():
        reasons[contact_id] |= names
    rules_now = [rule for listed in index.engagement.values() for rule in listed]
    # Activity that changed hands (a browser recognised, a merge or its undoing) scores as a
    # fresh calculation would: one cap for the person, not one per former contact.
    rescored = sorted(known_now | parties)
    for contact_id in recalc.rescore(rescored, rules_now, state) if rules_now else ():
        reasons[contact_id].add("earlier visits" if contact_id in known_now else "merge")
    matched = fit.reevaluate(todo, index.fit)
    for contact_id, names in matched.items():
        reasons[contact_id] |= names
    refresh_fit((set(matched) | parties) - gone)
    return announce(before, scores(maybe), reasons, state)


def scores(contact_ids: set[int]) -> dict[int, tuple[int, float]]:
    """{contact id: (fit, acc)}, (0, 0.0) for a contact without a score row."""
    found = {c: (0, 0.0) for c in contact_ids}
    found.update({c: (int(f), float(a)) for c, f, a in db.session.execute(
        select(S.c.contact_id, S.c.fit, S.c.acc).where(
            among(S.c.contact_id, sorted(contact_ids))))})
    return found


def announce(before: dict[int, tuple[int, float]], after: dict[int, tuple[int, float]],
             reasons: dict[int, set[str]], state: State) -> list[int]:
    """One `score_changed` event per contact whose fit or engagement changed; their ids."""
    now = utcnow()
    rows, changed = [], []
    for contact_id in sorted(after):
        old, new = before.get(contact_id, (0, 0.0)), after[contact_id]
        if old == new:
            continue
        changed.append(contact_id)
        value = state.value(new[1], now)
        change = new[0] + value - (old[0] + state.value(old[1], now))
        rows.append(score_changed(contact_id, new[0], value, change,
                                  sorted(reasons.get(contact_id, ())), now))
    event_stream.record_many(rows)
    return changed


# --- merges -------------------------------------------------------------------------------------

def merge(kept: int, merged: int) -> None:
    """The merged contact's points go to the contact kept, its fit matches and score row go
    (the kept contact's fit is re-checked by the batch, as after any merge); acc is summed
    again from the awards, on a locked row."""
    ensure_scores([kept])
    lock_scores([kept])
    other = db.session.execute(select(S.c.qualified_at, S.c.last_active_at).where(
        S.c.contact_id == merged)).first()
    db.session.execute(update(ScoreAward).where(ScoreAward.contact_id == merged)
                       .values(contact_id=kept))
    db.session.execute(update(Handoff).where(Handoff.contact_id == merged)
                       .values(contact_id=kept))
    for model in (FitMatch, FitHistory, ContactScore):
        db.session.execute(delete(model).where(model.contact_id == merged))
    if other is not None:
        qualified, active = other
        values = {}
        if qualified is not None:  # the first qualification of either counts
            moment = literal(qualified, UTCDateTime)
            values["qualified_at"] = case((S.c.qualified_at.is_(None), moment),
                                          (S.c.qualified_at > moment, moment),
                                          else_=S.c.qualified_at)
        if active is not None:
            moment = literal(active, UTCDateTime)
            values["last_active_at"] = case((S.c.last_active_at.is_(None), moment),
                                            (S.c.last_active_at < moment, moment),
                                            else_=S.c.last_active_at)
        if values:
            db.session.execute(update(S).where(S.c.contact_id == kept).values(**values))
    refresh_acc([kept])


def unmerge(kept: int, restored: int) -> None:
    """A merge undone: the points earned by the events that went back to the restored contact
    go back with them; both accs are summed again."""
    ensure_scores([kept, restored])
    lock_scores([kept, restored])
    theirs = select(Activity.id).where(Activity.contact_id == restored)
    db.session.execute(update(ScoreAward).where(ScoreAward.contact_id == kept,
                                                ScoreAward.event_id.in_(theirs))
                       .values(contact_id=restored))
    refresh_acc([kept, restored])
