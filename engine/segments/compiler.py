"""A segment's definition, as the builder saves it, compiled into one condition.

    {"match": "all" | "any",
     "groups": [{"match": "all" | "any", "conditions": [{"kind": "field", ...}, ...]}, ...]}

Groups are joined by the outer `match`, conditions inside a group by the group's own, so a
marketer can say "(in the UK and a director) or (tagged vip)". The result is one `Compiled`:
its SQL (restricted to live contacts: never a merged or erased one) and the union of what each
condition depends on.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_

from engine import plugins
from engine.contacts.models import Contact
from engine.segments.conditions import (
    ENGINE_KINDS,
    Compiled,
    ConditionError,
    ConditionKind,
)

MAX_GROUPS = 10
MAX_CONDITIONS = 30
LIVE = Contact.__table__.c.status.notin_(("merged", "erased"))


def plugin_kinds() -> dict[str, ConditionKind]:
    return {kind.kind: kind for _slug, kind in
            plugins.current().collect("register_segment_conditions")}


def compile_condition(condition: Any, kinds: dict[str, ConditionKind] | None = None) -> Compiled:
    if not isinstance(condition, dict):
        raise ConditionError("A condition is an object with a “kind”.")
    kind = condition.get("kind")
    if kind in ENGINE_KINDS:
        return ENGINE_KINDS[kind](condition)
    declared = (kinds if kinds is not None else plugin_kinds()).get(kind)
    if declared is None:
        raise ConditionError(f"Unknown kind of condition “{kind}” (is its plugin enabled?).")
    return declared.compile(condition)


def _join(match: Any, parts: list[Any]) -> Any:
    if match not in ("all", "any"):
        raise ConditionError("Match “all” or “any” of the conditions.")
    return and_(*parts) if match == "all" else or_(*parts)


def compile_definition(definition: Any) -> Compiled:
    """The whole segment as one `Compiled`, or ConditionError saying what to fix."""
    if not isinstance(definition, dict):
        raise ConditionError("A segment's definition is an object with groups of conditions.")
    groups = definition.get("groups")
    if not isinstance(groups, list) or not groups:
        raise ConditionError("Add at least one condition.")
    if len(groups) > MAX_GROUPS:
        raise ConditionError(f"A segment has at most {MAX_GROUPS} groups.")
    kinds = plugin_kinds()
    leaves: list[Compiled] = []
    sql_groups, bulk_groups = [], []
    for group in groups:
        conditions = group.get("conditions") if isinstance(group, dict) else None
        if not isinstance(conditions, list) or not conditions:
            raise ConditionError("Each group needs at least one condition.")
        if len(conditions) > MAX_CONDITIONS:
            raise ConditionError(f"A group has at most {MAX_CONDITIONS} conditions.")
        compiled = [compile_condition(c, kinds) for c in conditions]
        leaves += compiled
        sql_groups.append(_join(group.get("match", "all"), [c.sql for c in compiled]))
        bulk_groups.append(_join(group.get("match", "all"),
                                 [c.bulk if c.bulk is not None else c.sql for c in compiled]))
    match = definition.get("match", "all")
    return Compiled(
        sql=and_(LIVE, _join(match, sql_groups)),
        bulk=and_(LIVE, _join(match, bulk_groups)),
        events=frozenset().union(*(c.events for c in leaves)),
        fields=frozenset().union(*(c.fields for c in leaves)),
        segments=frozenset().union(*(c.segments for c in leaves)),
        candidates=tuple(q for c in leaves for q in c.candidates),
        every_change=any(c.every_change for c in leaves))
