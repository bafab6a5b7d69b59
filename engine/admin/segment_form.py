"""The segment builder's form: a definition as flat form fields and back, and the builder's
actions (add or remove a condition or a group, show another kind's inputs).

The whole definition is posted as form fields, so the builder saves without JavaScript:

    match                  all | any (how groups combine)
    g-<g>-match            all | any (how a group's conditions combine)
    c-<g>-<c>-kind         the kind of condition <c> of group <g>
    c-<g>-<c>-<input>      its inputs, e.g. c-0-1-field, c-0-1-op, c-0-1-value

Row numbers only identify rows: gaps are fine (htmx removes a row without renumbering the
others), and order follows them. `condition_from()` reads exactly the inputs of the row's kind,
typed as the compiler expects them (numbers as numbers, lifecycle stages as a list), so what is
saved is the documented definition format and nothing else.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from engine.contacts.service import custom_fields
from engine.db import MAX_ROW_ID
from engine.events.types import EventType, PropertyType
from engine.segments.conditions import OPERATORS, STANDARD_FIELDS, ConditionKind

ROW = re.compile(r"c-(\d{1,3})-(\d{1,3})-kind")
GROUP = re.compile(r"g-(\d{1,3})-match")
BLANK = {"kind": "field", "field": "", "op": "equals", "value": ""}
DAY_OPS = ("within_last_days", "within_next_days", "anniversary_within_days")
EMPTY_OPS = ("is_empty", "is_not_empty")
BOOLEANS = {"true": True, "false": False}  # a boolean property's yes / no menu
KIND_OPS = {  # the operators of each kind, the default first (field: by the field's type)
    "tag": ("has", "has_not"), "list": ("is", "is_not"), "stage": ("is", "is_not"),
    "company": OPERATORS["text"], "created": ("before", "after", "on", "within_last_days"),
    "activity": ("at_least", "fewer_than"), "segment": ("in", "not_in"),
}


@dataclass
class Group:
    index: int
    match: str = "all"
    conditions: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


@dataclass
class Draft:
    """A definition being edited: groups of numbered condition rows."""

    match: str = "all"
    groups: list[Group] = field(default_factory=list)

    @classmethod
    def of(cls, definition: dict[str, Any] | None) -> Draft:
        definition = definition or {}
        groups = [Group(g, str(group.get("match", "all")),
                        list(enumerate(c for c in group.get("conditions") or []
                                       if isinstance(c, dict))))
                  for g, group in enumerate(definition.get("groups") or [])
                  if isinstance(group, dict)]
        blank = [Group(0, "all", [(0, dict(BLANK))])]
        return cls(str(definition.get("match", "all")), groups or blank)

    def definition(self) -> dict[str, Any]:
        return {"match": self.match, "groups": [
            {"match": g.match, "conditions": [c for _, c in g.conditions]} for g in self.groups]}

    def group(self, index: int) -> Group | None:
        return next((g for g in self.groups if g.index == index), None)

    def next_group(self) -> int:
        return max((g.index for g in self.groups), default=-1) + 1


def _match(value: Any) -> str:
    return value if value in ("all", "any") else "all"


def read(form: MultiDict[str, str], types: dict[str, EventType],
         kinds: dict[str, ConditionKind]) -> Draft:
    """The draft a builder form posted."""
    groups: dict[int, Group] = {}
    for key in form:
        if found := GROUP.fullmatch(key):
            g = int(found.group(1))
            groups.setdefault(g, Group(g)).match = _match(form.get(key))
    for key in form:
        if found := ROW.fullmatch(key):
            g, c = int(found.group(1)), int(found.group(2))
            condition = condition_from(form, f"c-{g}-{c}-", types, kinds)
            groups.setdefault(g, Group(g)).conditions.append((c, condition))
    for group in groups.values():
        group.conditions.sort(key=lambda row: row[0])
    return Draft(_match(form.get("match")), [groups[g] for g in sorted(groups)])


def _number(raw: str) -> Any:
    """A number typed in a form as a number; anything else as typed (the compiler says why)."""
    try:
        number = float(raw)
    except ValueError:
        return raw
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def field_type(name: str) -> str:
    if name in STANDARD_FIELDS:
        return STANDARD_FIELDS[name]
    defined = custom_fields().get(name)
    return {"number": "number", "date": "date", "choice": "choice", "boolean": "choice"}.get(
        defined.type if defined else "", "text")


def condition_from(form: MultiDict[str, str], prefix: str, types: dict[str, EventType],
                   kinds: dict[str, ConditionKind]) -> dict[str, Any]:
    """One row's condition, with the inputs of its kind only."""
    def get(name: str) -> str:
        return (form.get(prefix + name) or "").strip()[:500]

    kind = get("kind")
    if kind == "field":
        name = get("field")
        op = _chosen(get("op"), operators(name))
        condition: dict[str, Any] = {"kind": kind, "field": name, "op": op}
        if op in DAY_OPS:
            condition["days"] = _number(get("days"))
        elif op not in EMPTY_OPS:
            value = get("value")
            condition["value"] = _number(value) if field_type(name) == "number" else value
        return condition
    op = _chosen(get("op"), KIND_OPS.get(kind, ("",)))
    if kind == "tag":
        return {"kind": kind, "tag": get("tag"), "op": op}
    if kind == "list":
        return {"kind": kind, "list": get("list"), "status": get("status") or "subscribed",
                "op": op}
    if kind == "stage":
        return {"kind": kind, "stages": form.getlist(prefix + "stages")[:20], "op": op}
    if kind == "consent":
        return {"kind": kind, "value": get("value")}
    if kind == "company":
        condition = {"kind": kind, "field": get("field") or "name", "op": op}
        if op not in EMPTY_OPS:
            condition["value"] = get("value")
        return condition
    if kind == "created":
        condition = {"kind": kind, "op": op}
        if op == "within_last_days":
            condition["days"] = _number(get("days"))
        else:
            condition["value"] = get("value")
        return condition
    if kind == "activity":
        return _activity(get, op, types)
    if kind == "segment":
        segment = get("segment")
        known = segment.isdecimal() and 0 < int(segment) <= MAX_ROW_ID
        return {"kind": kind, "segment": int(segment) if known else "", "op": op}
    declared = kinds.get(kind)
    if declared is None:
        return {"kind": kind}
    condition = {"kind": kind}
    for name, _label, input_kind, _choices in declared.form:
        condition[name] = _number(get(name)) if input_kind == "number" else get(name)
    return condition


def _chosen(op: str, choices: tuple[str, ...]) -> str:
    """The operator chosen, or the kind's first when it is not one of the kind's (the row's
    kind or field was changed: its menu now shows, and so submits, the first)."""
    return op if op in choices else choices[0]


def _activity(get: Any, op: str, types: dict[str, EventType]) -> dict[str, Any]:
    event, prop = get("event"), get("prop")
    declared = types.get(event)
    if declared is None or prop not in declared.properties:
        prop = ""  # the property of another event, before the event was changed
    condition: dict[str, Any] = {"kind": "activity", "event": event, "op": op,
                                 "count": _number(get("count") or "1")}
    if declared is not None and prop:
        value, kind = get("value"), declared.properties[prop]
        if kind is PropertyType.NUMBER:
            condition.update(prop=prop, value=_number(value))
        elif kind is PropertyType.BOOLEAN:  # "" until yes or no is chosen
            condition.update(prop=prop, value=BOOLEANS.get(value.lower(), ""))
        else:
            condition.update(prop=prop, value=value)
    if get("days"):
        condition["days"] = _number(get("days"))
    return condition


REQUIRED = {"field": ("field", "Choose a field."), "tag": ("tag", "Type a tag."),
            "list": ("list", "Type the name of a list."),
            "activity": ("event", "Choose what the contact did.")}


def missing(condition: dict[str, Any]) -> str | None:
    """What the row still needs that the compiler would accept blank (a tag named "", a value
    of "" to compare with): a blank input is a row left unfinished, not a condition."""
    kind = condition.get("kind")
    name, message = REQUIRED.get(str(kind), ("", ""))
    if name and not condition.get(name):
        return message
    if condition.get("value") == "" and (kind in ("field", "company") or condition.get("prop")):
        return "Type or choose a value."
    if kind == "stage" and not condition.get("stages"):
        return "Tick at least one stage."
    if kind == "created" and condition.get("value") == "":
        return "Choose a date."
    return None


def operators(field_name: str) -> tuple[str, ...]:
    return OPERATORS[field_type(field_name)]


# --- the builder's actions --------------------------------------------------------------------

ACTION = re.compile(r"(add|remove|row)-(\d{1,3})(?:-(\d{1,3}))?|add-group|refresh")


def apply(draft: Draft, action: str) -> tuple[str, int, int]:
    """Change the draft as `action` asks ("add-<g>", "remove-<g>-<c>", "remove-<g>",
    "add-group", "row-<g>-<c>": show a row's inputs again, "refresh"); returns what changed,
    `(what, group, row)`, for the partial to send back."""
    found = ACTION.fullmatch(action or "")
    if found is None:
        return "nothing", -1, -1
    if action == "add-group":
        g = draft.next_group()
        draft.groups.append(Group(g, "all", [(0, dict(BLANK))]))
        return "group", g, -1
    if action == "refresh":
        return "all", -1, -1
    verb, g, c = found.group(1), int(found.group(2)), found.group(3)
    group = draft.group(g)
    if group is None:
        return "nothing", g, -1
    if verb == "add":
        row = max((i for i, _ in group.conditions), default=-1) + 1
        group.conditions.append((row, dict(BLANK)))
        return "condition", g, row
    if verb == "remove" and c is None:
        draft.groups.remove(group)
        return "removed", g, -1
    if verb == "remove":
        group.conditions = [(i, cond) for i, cond in group.conditions if i != int(c)]
        return "removed", g, int(c)
    return "condition", g, int(c)  # row: its inputs again, for the kind now chosen
