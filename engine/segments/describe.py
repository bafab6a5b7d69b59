"""Segment conditions in words, for people: the builder's sentence beside each condition, a
segment's page, and the audit log's record of what an edit changed.

`describe()` never raises: a condition that does not compile is described as far as it goes
(the builder shows the compiler's error beside it), so words and errors never hide each other.
The labels of kinds and operators live here too, so the builder's menus say what the
sentences say.
"""
from __future__ import annotations

from typing import Any

from engine.contacts.service import custom_fields
from engine.db import db
from engine.events.types import EventType, all_types
from engine.segments.compiler import plugin_kinds
from engine.segments.conditions import ConditionKind
from engine.segments.models import Segment

KIND_LABELS = {
    "field": "Contact field", "tag": "Tag", "list": "List", "stage": "Lifecycle stage",
    "consent": "Consent", "company": "Company", "created": "Created date",
    "activity": "Activity", "segment": "Another segment",
}
FIELD_LABELS = {"email": "Email", "first_name": "First name", "last_name": "Last name",
                "phone": "Phone", "job_title": "Job title", "country": "Country"}
OPERATOR_LABELS = {
    "equals": "equals", "not_equals": "does not equal", "contains": "contains",
    "not_contains": "does not contain", "starts_with": "starts with", "is_empty": "is empty",
    "is_not_empty": "is not empty",
    "eq": "is", "ne": "is not", "lt": "is less than", "lte": "is at most",
    "gt": "is more than", "gte": "is at least",
    "before": "is before", "after": "is after", "on": "is on",
    "within_last_days": "is within the last … days", "within_next_days":
        "is within the next … days", "anniversary_within_days": "has its anniversary within … days",
}
CREATED_LABELS = {"before": "before", "after": "after", "on": "on",
                  "within_last_days": "in the last … days"}
LIST_LABELS = {"subscribed": "subscribed to", "pending": "pending confirmation on",
               "unsubscribed": "unsubscribed from"}
MISSING = "…"


def _shown(value: Any) -> str:
    if isinstance(value, bool):  # a boolean property, chosen as yes or no
        return "yes" if value else "no"
    if value is None or value == "":
        return MISSING
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _days(value: Any) -> str:
    return "1 day" if str(value) == "1" else f"{_shown(value)} days"


def _times(count: Any) -> str:
    return "once" if str(count) == "1" else f"{_shown(count)} times"


def field_label(name: Any) -> str:
    if name in FIELD_LABELS:
        return FIELD_LABELS[name]
    defined = custom_fields().get(str(name))
    return defined.label if defined is not None else _shown(name)


def _field(c: dict[str, Any], _types: dict[str, EventType]) -> str:
    op, label = c.get("op"), field_label(c.get("field"))
    if op in ("is_empty", "is_not_empty"):
        return f"{label} {OPERATOR_LABELS[op]}"
    if op == "within_last_days":
        return f"{label} is within the last {_days(c.get('days'))}"
    if op == "within_next_days":
        return f"{label} is within the next {_days(c.get('days'))}"
    if op == "anniversary_within_days":
        return f"{label} has its anniversary within the next {_days(c.get('days'))}"
    return f"{label} {OPERATOR_LABELS.get(str(op), _shown(op))} {_shown(c.get('value'))}"


def _tag(c: dict[str, Any], _types: dict[str, EventType]) -> str:
    has = "Does not have" if c.get("op") == "has_not" else "Has"
    return f"{has} the tag “{_shown(c.get('tag'))}”"


def _list(c: dict[str, Any], _types: dict[str, EventType]) -> str:
    status = LIST_LABELS.get(str(c.get("status", "subscribed")), _shown(c.get("status")))
    verb = "Is not" if c.get("op") == "is_not" else "Is"
    return f"{verb} {status} the list “{_shown(c.get('list'))}”"


def _stage(c: dict[str, Any], _types: dict[str, EventType]) -> str:
    stages = c.get("stages") or ([c["value"]] if c.get("value") else [])
    names = " or ".join(str(s).replace("_", " ") for s in stages) or MISSING
    return f"Lifecycle stage {'is not' if c.get('op') == 'is_not' else 'is'} {names}"


def _consent(c: dict[str, Any], _types: dict[str, EventType]) -> str:
    return f"Consent is {_shown(c.get('value'))}"


def _company(c: dict[str, Any], _types: dict[str, EventType]) -> str:
    part = {"name": "name", "domain": "domain"}.get(str(c.get("field")), MISSING)
    op = c.get("op")
    if op in ("is_empty", "is_not_empty"):
        return f"Company {part} {OPERATOR_LABELS[op]}"
    return f"Company {part} {OPERATOR_LABELS.get(str(op), _shown(op))} {_shown(c.get('value'))}"


def _created(c: dict[str, Any], _types: dict[str, EventType]) -> str:
    if c.get("op") == "within_last_days":
        return f"Created in the last {_days(c.get('days'))}"
    return f"Created {CREATED_LABELS.get(str(c.get('op')), MISSING)} {_shown(c.get('value'))}"


def _activity(c: dict[str, Any], types: dict[str, EventType]) -> str:
    """"Viewed a page where path = /pricing at least 3 times in the last 30 days"."""
    declared = types.get(str(c.get("event")))
    label = declared.label if declared is not None else f"did “{_shown(c.get('event'))}”"
    where = f" where {c['prop']} = {_shown(c.get('value'))}" if c.get("prop") else ""
    days = c.get("days")
    window = f" in the last {_days(days)}" if days not in (None, "") else ""
    count = c.get("count", 1)
    if c.get("op") == "fewer_than":
        if str(count) == "1":
            return f"Never {label[:1].lower()}{label[1:]}{where}{window}"
        return f"{label[:1].upper()}{label[1:]}{where} fewer than {_times(count)}{window}"
    times = "" if str(count) == "1" else f" at least {_times(count)}"
    return f"{label[:1].upper()}{label[1:]}{where}{times}{window}"


def _segment(c: dict[str, Any], _types: dict[str, EventType]) -> str:
    try:
        other = db.session.get(Segment, int(c.get("segment")))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        other = None
    name = f"“{other.name}”" if other is not None else MISSING
    return f"{'Is not' if c.get('op') == 'not_in' else 'Is'} in the segment {name}"


ENGINE_WORDS = {"field": _field, "tag": _tag, "list": _list, "stage": _stage,
                "consent": _consent, "company": _company, "created": _created,
                "activity": _activity, "segment": _segment}


def describe(condition: Any, types: dict[str, EventType] | None = None,
             kinds: dict[str, ConditionKind] | None = None) -> str:
    """One condition in words ("Country equals GB"). `types` and `kinds`: the declared event
    types and plugins' condition kinds, when the caller describes many conditions at once."""
    if not isinstance(condition, dict):
        return "An unreadable condition"
    kind = condition.get("kind")
    if kind in ENGINE_WORDS:
        return ENGINE_WORDS[kind](condition, types if types is not None else all_types())
    declared = (kinds if kinds is not None else plugin_kinds()).get(str(kind))
    if declared is None:
        return f"A condition of the kind “{_shown(kind)}”, whose plugin is not enabled"
    try:
        return str(declared.describe(condition))
    except Exception:  # a plugin's words must not take the page down
        return f"{declared.label} (its plugin could not describe it)"


def describe_groups(definition: Any) -> tuple[str, list[tuple[str, list[str]]]]:
    """`(match, [(group match, [sentence, ...]), ...])`: a definition in words, group by
    group, for pages that show it as lists."""
    if not isinstance(definition, dict):
        return "all", []
    types, kinds = all_types(), plugin_kinds()
    groups = []
    for group in definition.get("groups") or []:
        if isinstance(group, dict):
            groups.append((str(group.get("match", "all")),
                           [describe(c, types, kinds) for c in group.get("conditions") or []]))
    return str(definition.get("match", "all")), groups


def describe_definition(definition: Any) -> str:
    """A whole definition in one line: "(A and B) or C"."""
    match, groups = describe_groups(definition)
    parts = []
    for group_match, sentences in groups:
        joined = (" and " if group_match == "all" else " or ").join(sentences)
        parts.append(f"({joined})" if len(sentences) > 1 and len(groups) > 1 else joined)
    return (" and " if match == "all" else " or ").join(parts) or "No conditions"
