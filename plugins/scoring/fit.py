"""Fit as contacts change: which fit rules a contact matches (`FitMatch`, kept like segment
membership), and the fit score that follows from them.

A fit rule is a segment definition, so it is re-checked exactly as a segment is after an
event (`engine.segments.membership.reevaluate`): its own compiled SQL, run for the contacts the
event concerns only, compared with the matches stored. All the rules a batch affects are
checked in one query (a UNION ALL of each rule's SQL over its contacts), and the fit of the
contacts whose matches changed is set from their matches with one UPDATE, never summed in
Python; a fit that changed is traced in `FitHistory` for the day.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Integer, delete, func, literal, select, tuple_, union_all, update

from engine.contacts.models import Contact
from engine.contacts.store import dialect_insert
from engine.db import db, utcnow
from engine.segments.conditions import Compiled
from plugins.scoring.engagement import chunks, ensure_scores
from plugins.scoring.models import ContactScore, FitHistory, FitMatch, ScoringRule

C = Contact.__table__.c
S = ContactScore.__table__
M = FitMatch.__table__
R = ScoringRule.__table__
H = FitHistory.__table__
UNION_IDS = 5000  # contact ids per UNION ALL statement


def _matching(todo: dict[int, set[int]],
              rules: dict[int, tuple[ScoringRule, Compiled]]) -> set[tuple[int, int]]:
    """(rule id, contact id) for the contacts in `todo[rule]` that match the rule now."""
    found: set[tuple[int, int]] = set()
    parts: list[Any] = []
    size = 0
    for rule_id, contacts in sorted(todo.items()):
        compiled = rules[rule_id][1]
        parts.append(select(literal(rule_id, Integer).label("rule_id"), C.id)
                     .where(C.id.in_(sorted(contacts)), compiled.sql))
        size += len(contacts)
        if size >= UNION_IDS:
            found |= _run(parts)
            parts, size = [], 0
    if parts:
        found |= _run(parts)
    return found


def _run(parts: list[Any]) -> set[tuple[int, int]]:
    query = parts[0] if len(parts) == 1 else union_all(*parts)
    return {(int(r), int(c)) for r, c in db.session.execute(query)}


def reevaluate(todo: dict[int, set[int]],
               rules: dict[int, tuple[ScoringRule, Compiled]]) -> dict[int, set[str]]:
    """Bring these contacts' matches of these fit rules up to date (inside `write()`);
    {contact id: names of the rules entered or left} for those whose matches changed."""
    todo = {r: {c for c in cs if isinstance(c, int)} for r, cs in todo.items() if r in rules}
    todo = {r: cs for r, cs in todo.items() if cs}
    if not todo:
        return {}
    wanted = {(r, c) for r, cs in todo.items() for c in cs}
    matching = _matching(todo, rules)
    contacts = sorted({c for cs in todo.values() for c in cs})
    current: set[tuple[int, int]] = set()
    for chunk in chunks(contacts):
        current |= {(int(r), int(c)) for r, c in db.session.execute(
            select(M.c.rule_id, M.c.contact_id).where(M.c.rule_id.in_(sorted(todo)),
                                                      M.c.contact_id.in_(chunk)))}
    current &= wanted
    changed: list[tuple[int, int]] = []
    entering = sorted(matching - current)
    if entering:
        now = utcnow()
        statement = dialect_insert(db.session.get_bind().dialect.name)(M) \
            .on_conflict_do_nothing().returning(M.c.rule_id, M.c.contact_id)
        changed += [tuple(row) for row in db.session.execute(  # type: ignore[misc]
            statement, [{"rule_id": r, "contact_id": c, "since": now} for r, c in entering])]
    leaving = sorted(current - matching)
    for start in range(0, len(leaving), UNION_IDS):
        part = leaving[start:start + UNION_IDS]
        changed += [tuple(row) for row in db.session.execute(  # type: ignore[misc]
            delete(M).where(tuple_(M.c.rule_id, M.c.contact_id).in_(part))
            .returning(M.c.rule_id, M.c.contact_id))]
    names: dict[int, set[str]] = defaultdict(set)
    for rule_id, contact_id in changed:
        names[contact_id].add(rules[rule_id][0].name)
    return dict(names)


def points_sql() -> Any:
    """A contact's fit from its stored matches: the points of the active fit rules it matches
    (correlated with the score row being updated)."""
    return select(func.coalesce(func.sum(R.c.points), 0)).select_from(
        M.join(R, R.c.id == M.c.rule_id)).where(
        M.c.contact_id == S.c.contact_id, R.c.kind == "fit", R.c.active.is_(True),
        R.c.status != "deleting").scalar_subquery()


def recompute(contact_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """Set these contacts' fit from their matches (rows created as needed) and trace today's
    fit of those whose fit changed; {contact id: (old fit, new fit)} for those."""
    ids = sorted(set(contact_ids))
    if not ids:
        return {}
    ensure_scores(ids)
    now = utcnow()
    moved: dict[int, tuple[int, int]] = {}
    for chunk in chunks(ids):
        old = dict(db.session.execute(select(S.c.contact_id, S.c.fit).where(
            S.c.contact_id.in_(chunk))).all())
        new = dict(db.session.execute(
            update(S).where(S.c.contact_id.in_(chunk), S.c.fit != points_sql())
            .values(fit=points_sql(), updated_at=now).returning(S.c.contact_id, S.c.fit)).all())
        moved.update({c: (int(old.get(c, 0)), int(f)) for c, f in new.items()})
    trace(moved, now.date())
    return moved


def trace(moved: dict[int, tuple[int, int]], day: Any) -> None:
    """FitHistory(contact, day) = the new fit, one upsert for all."""
    if not moved:
        return
    insert = dialect_insert(db.session.get_bind().dialect.name)(H)
    statement = insert.on_conflict_do_update(
        index_elements=["contact_id", "day"], set_={"fit": insert.excluded.fit})
    db.session.execute(statement, [{"contact_id": c, "day": day, "fit": new}
                                   for c, (_, new) in sorted(moved.items())])
