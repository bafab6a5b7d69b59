"""Rules: checking what a marketer wrote, and deciding which events a rule scores.

An engagement rule's test of an event exists twice, and the two must agree: `matches(rule,
event)` in Python (each event as it is delivered) and `event_filter_sql(rule)` over the
activity table (a recalculation from history). A fit rule is a segment definition, compiled
by the segments concern (`engine.segments.compiler`), so fit uses every condition a segment
can, plugins' included (except this plugin's own: a score cannot depend on itself).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, and_, case, func, literal, not_
from sqlalchemy.sql import ColumnElement

from engine.events.models import Activity
from engine.events.types import PropertyType, all_types
from engine.segments.compiler import compile_definition
from engine.segments.conditions import Compiled, ConditionError
from engine.segments.describe import describe_definition
from plugins.scoring.models import CAP_PERIODS, RULE_KINDS, ScoringRule

# What counts as a contact being active, for inactivity rules: what they did themselves.
ACTIVE_TYPES = ("page_view", "click", "download", "form_submitted", "email_opened",
                "email_clicked")
# Event types no rule may score: the plugin's own, and what follows from scoring.
UNSCORABLE = frozenset({"score_changed", "stage_changed", "segment_entered", "segment_left"})
FILTER_OPS = ("equals", "not_equals", "contains", "starts_with", "gte", "lte")
FILTER_LABELS = {"equals": "is", "not_equals": "is not", "contains": "contains",
                 "starts_with": "starts with", "gte": "is at least", "lte": "is at most"}
MAX_POINTS = 1000
# Events that carry their own points (a workflow's "adjust the score" step): a rule on this
# type gives each event the points it names, within ±MAX_POINTS, not the rule's.
ADJUSTMENT = "score_adjusted"
MAX_FILTERS = 5
A = Activity.__table__.c


class RuleError(ValueError):
    """A rule that cannot be saved; the message says what to change."""


@dataclass(frozen=True)
class Draft:
    """A rule as checked by `check()`, ready to store."""

    kind: str
    name: str
    points: int
    definition: dict[str, Any]
    event: str
    filters: list[dict[str, Any]]
    cap_count: int | None
    cap_period: str
    days: int | None
    active: bool = True


def check(values: dict[str, Any]) -> Draft:
    """Validate a rule's values (from the admin's form or the CLI); RuleError says what's
    wrong. Checks everything a stored rule needs, so a saved rule never fails later."""
    kind = values.get("kind")
    if kind not in RULE_KINDS:
        raise RuleError("A rule is about fit, engagement or inactivity.")
    name = " ".join(str(values.get("name") or "").split())[:200]
    if not name:
        raise RuleError("Give the rule a name (it is how the explanation names it).")
    try:
        points = int(values.get("points"))
    except (TypeError, ValueError):
        raise RuleError("Points must be a whole number (negative to subtract).") from None
    if points == 0 or abs(points) > MAX_POINTS:
        raise RuleError(f"Points must be from −{MAX_POINTS} to {MAX_POINTS}, and not 0.")
    active = bool(values.get("active", True))
    if kind == "fit":
        definition = values.get("definition")
        fit_compiled(definition)
        return Draft(kind, name, points, definition, "", [], None, "", None, active)
    if kind == "inactivity":
        days = _whole(values.get("days"), "number of days", 1, 3650)
        return Draft(kind, name, points, {}, "", [], None, "", days, active)
    event = str(values.get("event") or "")
    declared = all_types()
    if event not in declared or event in UNSCORABLE:
        raise RuleError("Choose an event type to score.")
    filters = [_filter(f, declared[event]) for f in (values.get("filters") or [])]
    if len(filters) > MAX_FILTERS:
        raise RuleError(f"A rule has at most {MAX_FILTERS} property filters.")
    period = str(values.get("cap_period") or "")
    cap = values.get("cap_count")
    if cap in (None, "") and period:
        raise RuleError("Say how many times per period the rule may give points.")
    if cap not in (None, ""):
        cap = _whole(cap, "cap", 1, 10_000)
        if period not in CAP_PERIODS:
            raise RuleError("A cap is per day, week, month, or ever.")
    else:
        cap, period = None, ""
    return Draft(kind, name, points, {}, event, filters, cap, period, None, active)


def _whole(value: Any, name: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise RuleError(f"The {name} must be a whole number.") from None
    if not low <= number <= high:
        raise RuleError(f"The {name} must be from {low} to {high}.")
    return number


def _filter(raw: Any, declared: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise RuleError("A property filter has a property, a test and a value.")
    prop, op, value = raw.get("prop"), raw.get("op"), raw.get("value")
    if prop not in declared.properties:
        raise RuleError(f"“{declared.label}” has no property “{prop}”.")
    if op not in FILTER_OPS:
        raise RuleError(f"“{op}” is not a test of a property.")
    if op in ("gte", "lte"):
        if declared.properties[prop] != PropertyType.NUMBER:
            raise RuleError(f"“{prop}” is not a number: test it with is, contains or starts "
                            "with.")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise RuleError(f"Compare “{prop}” with a number.") from None
        if number != number or abs(number) > 1e15:
            raise RuleError(f"Compare “{prop}” with a number.")
        return {"prop": prop, "op": op, "value": number}
    text = str(value if value is not None else "")
    if not text or len(text) > 500 or "\x00" in text:
        raise RuleError(f"Give “{prop}” a value of up to 500 characters.")
    return {"prop": prop, "op": op, "value": text}


def fit_compiled(definition: Any) -> Compiled:
    """A fit rule's conditions compiled as a segment's are; RuleError when they cannot be."""
    if mentions_scores(definition):
        raise RuleError("A fit rule cannot test scores or scoring stages.")
    try:
        return compile_definition(definition)
    except ConditionError as exc:
        raise RuleError(str(exc)) from None


def mentions_scores(definition: Any) -> bool:
    """Whether a segment definition tests scores or scoring stages (this plugin's condition
    kinds): a fit rule may not, and segments that do are rebuilt after a recalculation."""
    groups = definition.get("groups") if isinstance(definition, dict) else None
    return any(isinstance(c, dict) and str(c.get("kind", "")).startswith("score")
               for g in (groups or []) if isinstance(g, dict)
               for c in (g.get("conditions") or []))


# --- which events an engagement rule scores ---------------------------------------------------

def matches(rule: ScoringRule, event: dict[str, Any]) -> bool:
    """Whether this event earns the rule's points (before its cap)."""
    if event["type"] != rule.event:
        return False
    props = event.get("properties") or {}
    return all(_passes(f, props.get(f["prop"])) for f in rule.filters or [])


def _passes(test: dict[str, Any], actual: Any) -> bool:
    op, wanted = test["op"], test["value"]
    if op in ("gte", "lte"):
        if isinstance(actual, bool):
            return False
        try:
            number = float(actual)
        except (TypeError, ValueError):
            return False
        return number >= wanted if op == "gte" else number <= wanted
    text = "" if actual is None else _as_text(actual).lower()
    low = str(wanted).lower()
    return {"equals": text == low, "not_equals": text != low, "contains": low in text,
            "starts_with": text.startswith(low)}[op]


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def event_filter_sql(rule: ScoringRule) -> ColumnElement[bool]:
    """`matches()` over the activity table: the rule's event type and property filters."""
    parts: list[ColumnElement[bool]] = [A.type == rule.event]
    for test in rule.filters or []:
        op, wanted, prop = test["op"], test["value"], test["prop"]
        if op in ("gte", "lte"):
            number = A.properties[prop].as_float()
            parts.append(number >= wanted if op == "gte" else number <= wanted)
            continue
        text = func.lower(func.coalesce(A.properties[prop].as_string(), ""))
        low = str(wanted).lower()
        pattern = low.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        parts.append({"equals": text == low, "not_equals": not_(text == low),
                      "contains": text.like(f"%{pattern}%", escape="\\"),
                      "starts_with": text.like(f"{pattern}%", escape="\\")}[op])
    return and_(*parts)


def points_for(rule: ScoringRule, event: dict[str, Any]) -> int:
    """The points an event earns under a rule: the rule's, or the event's own for
    `ADJUSTMENT` events."""
    if rule.event != ADJUSTMENT:
        return rule.points
    try:
        points = int(float((event.get("properties") or {}).get("points") or 0))
    except (TypeError, ValueError):
        return 0
    return max(-MAX_POINTS, min(MAX_POINTS, points))


def points_sql(rule: ScoringRule) -> Any:
    """`points_for` in SQL, over the activity table."""
    if rule.event != ADJUSTMENT:
        return literal(rule.points, Integer)
    given = func.coalesce(A.properties["points"].as_integer(), 0)
    return case((given > MAX_POINTS, MAX_POINTS), (given < -MAX_POINTS, -MAX_POINTS),
                else_=given)


def describe(rule: ScoringRule) -> str:
    """The rule in words, for lists and the explanation."""
    sign = f"{rule.points:+d}" if rule.event != ADJUSTMENT else "the points it names"
    if rule.kind == "fit":
        return f"{sign} when {describe_definition(rule.definition)}"
    if rule.kind == "inactivity":
        return f"{sign} after {rule.days} days without activity"
    label = all_types().get(rule.event)
    words = f"{sign} for each “{label.label if label else rule.event}”"
    tests = [f"{t['prop']} {FILTER_LABELS[t['op']]} “{t['value']}”" for t in rule.filters or []]
    if tests:
        words += " where " + " and ".join(tests)
    if rule.cap_count:
        per = "in all" if rule.cap_period == "ever" else f"a {rule.cap_period}"
        words += f", at most {rule.cap_count} {'time' if rule.cap_count == 1 else 'times'} {per}"
    return words
