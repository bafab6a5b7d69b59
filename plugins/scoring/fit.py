"""Fit as contacts change: which fit rules a contact matches (`FitMatch`, kept like segment
membership), and the fit score that follows from them.

A fit rule is a segment definition, so it is re-checked exactly as a segment is after an
event (`engine.segments.membership.reevaluate`): its own compiled SQL, run for the contacts the
event concerns only, compared with the matches stored. All the rules a batch affects are
checked in one query (a UNION ALL of each rule's SQL over its contacts); the fit of the
contacts whose matches changed is then set from their matches by `sets.refresh_fit`, never
summed in Python.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Integer, delete, literal, select, tuple_, union_all

from engine.db import db, utcnow
from engine.segments.conditions import Compiled
from plugins.scoring.models import ScoringRule
from plugins.scoring.sets import C, M, among, insert

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
                     .where(among(C.id, sorted(contacts)), compiled.sql))
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
    current = {(int(r), int(c)) for r, c in db.session.execute(
        select(M.c.rule_id, M.c.contact_id).where(M.c.rule_id.in_(sorted(todo)),
                                                  among(M.c.contact_id, contacts)))}
    current &= wanted
    changed: list[tuple[int, int]] = []
    entering = sorted(matching - current)
    if entering:
        now = utcnow()
        statement = insert(M).on_conflict_do_nothing().returning(M.c.rule_id, M.c.contact_id)
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
