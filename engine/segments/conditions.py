"""Segment conditions: each one is SQL (for bulk builds and for re-checking a few contacts) plus
what can change it (for keeping membership current event by event).

A condition is a dict as the admin's builder saves it, e.g.
    {"kind": "field", "field": "country", "op": "equals", "value": "GB"}
    {"kind": "activity", "event": "page_view", "prop": "path", "value": "/pricing",
     "op": "at_least", "count": 3, "days": 30}
(an activity's property `value` is text, a number, or true/false for a boolean property).
`compile_condition()` checks it and returns a `Compiled`:
- `sql`: a boolean SQL expression over the `contacts` table, the one source of truth: a bulk
  build runs it over every contact, an event re-runs it for the contacts the event concerns;
- `events` / `fields` / `segments`: the event types, contact fields (through `field_changed`)
  and other segments (through `segment_entered`/`segment_left`) whose change can change it;
- `candidates(t0, t1)`: for conditions about time ("in the last 30 days", "anniversary within
  7 days"), a query of the contacts whose answer may have changed between t0 and t1 by the mere
  passing of time. Its bounds are computed here and passed as parameters, so no date arithmetic
  runs in SQL and the same query serves SQLite and PostgreSQL.

Plugins add condition kinds with `register_segment_conditions` (`ConditionKind`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, String, and_, bindparam, exists, func, not_, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.functions import FunctionElement

from engine.contacts.models import (
    LIFECYCLE_STAGES,
    Company,
    Contact,
    ContactTag,
    Subscription,
    Tag,
)
from engine.contacts.service import custom_fields
from engine.db import UTCDateTime, utcnow
from engine.events.models import Activity
from engine.segments.models import SegmentMember

C = Contact.__table__.c
Candidates = Callable[[datetime, datetime], Select[Any]]

STANDARD_FIELDS = {  # contact columns a condition may test, with their type
    "email": "text", "first_name": "text", "last_name": "text", "phone": "text",
    "job_title": "text", "country": "text",
}
OPERATORS = {
    "text": ("equals", "not_equals", "contains", "not_contains", "starts_with", "is_empty",
             "is_not_empty"),
    "number": ("eq", "ne", "lt", "lte", "gt", "gte", "is_empty", "is_not_empty"),
    "date": ("before", "after", "on", "within_last_days", "within_next_days",
             "anniversary_within_days", "is_empty", "is_not_empty"),
    "choice": ("equals", "not_equals", "is_empty", "is_not_empty"),
}
COMPANY_FIELDS = ("name", "domain")
MAX_DAYS = 36_600


class ConditionError(ValueError):
    """A condition that cannot be used; the message says what to change."""


@dataclass(frozen=True)
class Compiled:
    sql: ColumnElement[bool]
    events: frozenset[str] = frozenset()
    fields: frozenset[str] = frozenset()
    segments: frozenset[int] = frozenset()
    candidates: tuple[Candidates, ...] = ()
    every_change: bool = False  # any change to the contact may change it (plugins' conditions)
    bulk: ColumnElement[bool] | None = None  # the same test in a form faster over everyone


# The range of contact ids one build statement covers: `membership.sync_range` gives it with
# `.params(build_low=…, build_high=…)`; by default every contact. A condition's `bulk` form
# repeats it on the contact id of the table it looks into (tags, lists, activities, members):
# PostgreSQL does not carry a range on `contacts.id` over to the tables correlated with it, and
# would otherwise read the whole of them (every contact's tags, say) for each range.
BUILD_LOW = bindparam("build_low", 0, type_=BigInteger)
BUILD_HIGH = bindparam("build_high", 2**62, type_=BigInteger)


def in_build_range(contact_id: Any) -> ColumnElement[bool]:
    return and_(contact_id >= BUILD_LOW, contact_id < BUILD_HIGH)


@dataclass(frozen=True)
class ConditionKind:
    """A kind of condition a plugin adds (`register_segment_conditions`): `compile(condition)`
    returns a `Compiled` (raise ConditionError for a bad one); `label` and `describe(condition)`
    are for people; `form` lists the inputs the builder shows: [(name, label, kind, choices)],
    each choice a value or a (value, label) pair."""

    kind: str
    label: str
    compile: Callable[[dict[str, Any]], Compiled]
    describe: Callable[[dict[str, Any]], str]
    form: list[tuple[str, str, str, list[Any]]] = field(default_factory=list)


# --- helpers ---------------------------------------------------------------------------------

def _text(value: Any, name: str = "value") -> str:
    if not isinstance(value, str) or len(value) > 500 or "\x00" in value:
        raise ConditionError(f"The {name} must be text of up to 500 characters.")
    return value


def _number(value: Any, name: str = "value") -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConditionError(f"The {name} must be a number.") from None
    if number != number:
        raise ConditionError(f"The {name} must be a number.")
    if abs(number) > 1e15:
        raise ConditionError(f"The {name} is too large.")
    return number


def _days(value: Any, name: str = "number of days") -> int:
    number = _number(value, name)
    if number != int(number) or not 0 <= number <= MAX_DAYS:
        raise ConditionError(f"The {name} must be a whole number from 0 to {MAX_DAYS}.")
    return int(number)


def _date(value: Any) -> date:
    try:
        return date.fromisoformat(_text(value, "date"))
    except ValueError:
        raise ConditionError("The date must be written as YYYY-MM-DD.") from None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def field_type(name: str) -> tuple[str, Any]:
    """The type of a contact field and the SQL expression of its value (text, or number)."""
    if name in STANDARD_FIELDS:
        return STANDARD_FIELDS[name], C[name]
    defined = custom_fields().get(name)
    if defined is None:
        raise ConditionError(f"There is no contact field “{name}”.")
    if defined.type == "boolean":  # a choice of "true" or "false", read as JSON says it
        return "choice", json_boolean(C.custom[name])
    # A multi-choice field compares as the text of its JSON list ("contains" an option).
    kind = {"number": "number", "date": "date", "choice": "choice"}.get(defined.type, "text")
    value = C.custom[name]
    return kind, (value.as_float() if kind == "number" else value.as_string())


class json_boolean(FunctionElement[str]):
    """`json_boolean(column[name])`: "true" or "false" when that JSON property is a boolean,
    something else otherwise. SQLite's `json_extract` reads JSON booleans as 1 and 0, and a
    cast to boolean on PostgreSQL fails on the first row whose property is other text, so each
    backend is asked for the JSON value itself (`json_type`, the `->` value as text)."""

    type = String()
    inherit_cache = True
    name = "json_boolean"


@compiles(json_boolean)
def _json_boolean_sqlite(element: json_boolean, compiler: Any, **kw: Any) -> str:
    (index,) = element.clauses
    return (f"json_type({compiler.process(index.left, **kw)}, "
            f"{compiler.process(index.right, **kw)})")


@compiles(json_boolean, "postgresql")
def _json_boolean_postgresql(element: json_boolean, compiler: Any, **kw: Any) -> str:
    (index,) = element.clauses
    return f"CAST(({compiler.process(index, **kw)}) AS TEXT)"


def _empty(column: Any, kind: str) -> ColumnElement[bool]:
    if kind in ("number", "date") and not isinstance(column.type, String):
        return column.is_(None)
    return or_(column.is_(None), column == "")


# --- the engine's condition kinds --------------------------------------------------------------

def _field(condition: dict[str, Any]) -> Compiled:
    name = _text(condition.get("field"), "field")
    kind, column = field_type(name)
    op = condition.get("op")
    if op not in OPERATORS[kind]:
        raise ConditionError(f"“{op}” is not an operator for the {kind} field “{name}”.")
    fields = frozenset({name})
    if op == "is_empty":
        return Compiled(_empty(column, kind), fields=fields)
    if op == "is_not_empty":
        return Compiled(not_(_empty(column, kind)), fields=fields)
    if kind in ("text", "choice"):
        return Compiled(_text_sql(column, op, _text(condition.get("value"))), fields=fields)
    if kind == "number":
        value = _number(condition.get("value"))
        compare = {"eq": column == value, "ne": column != value, "lt": column < value,
                   "lte": column <= value, "gt": column > value, "gte": column >= value}[op]
        return Compiled(and_(column.is_not(None), compare), fields=fields)
    return _date_condition(name, column, op, condition, fields)


def _text_sql(column: Any, op: str, value: str) -> ColumnElement[bool]:
    """Text compares case-insensitively, a missing value as empty text. On a column that
    cannot be NULL (the contact's and company's own text columns) that is `lower(column)`
    alone: the form an expression index on `lower(column)` serves and keeps statistics for
    (see `ix_contacts_country_lower`); a needless `coalesce` would hide both from the planner."""
    low, pattern = value.lower(), _escape_like(value.lower())
    column_low = func.lower(column if _not_null(column) else func.coalesce(column, ""))
    return {
        "equals": column_low == low,
        "not_equals": column_low != low,
        "contains": column_low.like(f"%{pattern}%", escape="\\"),
        "not_contains": not_(column_low.like(f"%{pattern}%", escape="\\")),
        "starts_with": column_low.like(f"{pattern}%", escape="\\"),
    }[op]


def _not_null(column: Any) -> bool:
    """Whether this is a table column declared NOT NULL (a JSON property never is)."""
    return getattr(column, "nullable", True) is False and getattr(column, "table", None) is not None


def _iso(moment: datetime | date) -> str:
    return moment.isoformat()[:10]


def _date_condition(name: str, column: Any, op: str, condition: dict[str, Any],
                    fields: frozenset[str]) -> Compiled:
    """Dates compare as ISO text (`YYYY-MM-DD…` sorts as time does); bounds that move with
    the clock are parameters computed when the SQL runs (`_Today`)."""
    text = column
    if op in ("before", "after", "on"):
        day = _iso(_date(condition.get("value")))
        sql = {"before": text < day, "after": text > day, "on": text == day}[op]
        return Compiled(and_(column.is_not(None), sql), fields=fields)
    days = _days(condition.get("days"))
    if op == "within_last_days":  # from `days` ago to today
        sql = and_(text >= _Today.shifted(-days), text <= _Today.shifted(0))
        bounds = (lambda t: t - timedelta(days=days + 1), lambda t: t)  # leaving, entering
    elif op == "within_next_days":  # from today to `days` ahead
        sql = and_(text >= _Today.shifted(0), text <= _Today.shifted(days))
        bounds = (lambda t: t - timedelta(days=1), lambda t: t + timedelta(days=days))
    else:  # anniversary_within_days: its month and day fall in the next `days` days
        month_day = func.substr(text, 6, 5)
        sql = month_day.in_(_Today.month_days(days))
        return Compiled(and_(column.is_not(None), sql), fields=fields,
                        candidates=(_anniversary_candidates(text, days),))
    return Compiled(and_(column.is_not(None), sql), fields=fields,
                    candidates=(_date_candidates(text, bounds),))


def _date_candidates(text: Any, bounds: tuple[Callable[[date], date], ...]) -> Candidates:
    """Contacts whose date crossed an edge of the window between two checks."""
    def query(t0: datetime, t1: datetime) -> Select[Any]:
        edges = [or_(and_(text > _iso(edge(t0.date())), text <= _iso(edge(t1.date()))))
                 for edge in bounds]
        return select(C.id).where(or_(*edges))
    return query


def _anniversary_candidates(text: Any, days: int) -> Candidates:
    def query(t0: datetime, t1: datetime) -> Select[Any]:
        span = min((t1.date() - t0.date()).days, 366)
        changed = set()
        for n in range(span + 1):  # days entering the window, and days leaving it
            day = t0.date() + timedelta(days=n)
            changed.add((day + timedelta(days=days)).strftime("%m-%d"))
            changed.add((day - timedelta(days=1)).strftime("%m-%d"))
        return select(C.id).where(func.substr(text, 6, 5).in_(sorted(changed)))
    return query


class _Today:
    """Bounds relative to today, rendered as bound parameters whose value is computed each
    time the statement runs (so a compiled segment never goes stale at midnight)."""

    @staticmethod
    def shifted(days: int) -> Any:
        return bindparam(f"today_{'m' if days < 0 else 'p'}{abs(days)}", type_=String,
                         callable_=lambda: _iso(utcnow() + timedelta(days=days)))

    @staticmethod
    def month_days(days: int) -> Any:
        def values() -> list[str]:
            today = utcnow().date()
            return [(today + timedelta(days=n)).strftime("%m-%d") for n in range(days + 1)]
        return bindparam(f"anniversary_{days}", expanding=True, callable_=values)


def _tag(condition: dict[str, Any]) -> Compiled:
    name = _text(condition.get("tag"), "tag").strip().lower()
    tagged = select(ContactTag.contact_id).join(Tag, Tag.id == ContactTag.tag_id).where(
        ContactTag.contact_id == C.id, Tag.name == name)
    op = condition.get("op", "has")
    if op not in ("has", "has_not"):
        raise ConditionError("A tag condition is “has” or “has not”.")
    return _either(op == "has", tagged, in_build_range(ContactTag.contact_id),
                   events=frozenset({"tag_added", "tag_removed"}))


def _either(positive: bool, found: Select[Any], ranged: ColumnElement[bool],
            **depends: Any) -> Compiled:
    """`EXISTS (found)` (or its negation), and its bulk form limited to the build's range."""
    has, in_bulk = exists(found), exists(found.where(ranged))
    return Compiled(has if positive else not_(has), bulk=in_bulk if positive else not_(in_bulk),
                    **depends)


LIST_STATUSES = ("subscribed", "pending", "unsubscribed")


def _list(condition: dict[str, Any]) -> Compiled:
    slug = _text(condition.get("list"), "list")
    status = condition.get("status", "subscribed")
    if status not in LIST_STATUSES:
        raise ConditionError(f"A list status is one of {', '.join(LIST_STATUSES)}.")
    member = select(Subscription.id).where(
        Subscription.contact_id == C.id, Subscription.list_slug == slug,
        Subscription.status == status)
    op = condition.get("op", "is")
    if op not in ("is", "is_not"):
        raise ConditionError("A list condition is “is” or “is not”.")
    return _either(op == "is", member, in_build_range(Subscription.contact_id),
                   events=frozenset({"list_joined", "list_left", "subscription_confirmed"}))


def _stage(condition: dict[str, Any]) -> Compiled:
    stages = condition.get("stages") or ([condition["value"]] if condition.get("value") else [])
    if not stages or any(s not in LIFECYCLE_STAGES for s in stages):
        raise ConditionError(f"Choose stages among {', '.join(LIFECYCLE_STAGES)}.")
    op = condition.get("op", "is")
    if op not in ("is", "is_not"):
        raise ConditionError("A stage condition is “is” or “is not”.")
    sql = C.lifecycle_stage.in_(stages)
    return Compiled(sql if op == "is" else not_(sql), fields=frozenset({"lifecycle_stage"}),
                    events=frozenset({"stage_changed"}))


def _consent(condition: dict[str, Any]) -> Compiled:
    value = condition.get("value")
    if value not in ("granted", "unknown", "withdrawn"):
        raise ConditionError("Consent is granted, unknown or withdrawn.")
    return Compiled(C.consent == value, fields=frozenset({"consent"}))


def _company(condition: dict[str, Any]) -> Compiled:
    name = condition.get("field")
    if name not in COMPANY_FIELDS:
        raise ConditionError(f"A company condition tests {' or '.join(COMPANY_FIELDS)}.")
    op = condition.get("op")
    if op not in OPERATORS["text"]:
        raise ConditionError(f"“{op}” is not an operator for text.")
    column = Company.__table__.c[name]
    if op in ("is_empty", "is_not_empty"):
        inner: ColumnElement[bool] = _empty(column, "text")
    else:
        inner = _text_sql(column, op, _text(condition.get("value")))
    has = exists(select(Company.id).where(Company.id == C.company_id, inner))
    if op == "is_empty":
        has = or_(C.company_id.is_(None), has)
    return Compiled(has, fields=frozenset({"company"}))


def _activity(condition: dict[str, Any]) -> Compiled:
    """Did event T (where property p = v) at least / fewer than N times (in the last D days)."""
    event = _text(condition.get("event"), "event")
    op = condition.get("op", "at_least")
    if op not in ("at_least", "fewer_than"):
        raise ConditionError("An activity condition is “at least” or “fewer than” N times.")
    count = int(_number(condition.get("count", 1), "number of times"))
    if not 1 <= count <= 100_000:
        raise ConditionError("The number of times must be from 1 to 100000.")
    days = condition.get("days")
    window = _days(days) if days not in (None, "") else None
    A = Activity.__table__.c
    where = [A.contact_id == C.id, A.type == event]
    prop = condition.get("prop")
    if prop:
        prop = _text(prop, "property")
        value = condition.get("value")
        if isinstance(value, bool):
            where.append(json_boolean(A.properties[prop]) == ("true" if value else "false"))
        elif isinstance(value, (int, float)):
            where.append(A.properties[prop].as_float() == float(value))
        else:
            where.append(A.properties[prop].as_string() == _text(value))
    if window is not None:
        where.append(A.occurred_at >= _Since.days_ago(window))
    matching = select(A.id).where(*where)
    if count == 1:  # a correlated EXISTS: PostgreSQL turns it into a semi-join for bulk builds
        did, bulk = exists(matching), exists(matching.where(in_build_range(A.contact_id)))
    else:  # the N-th most recent match exists; in bulk, one pass grouping by contact
        did = exists(matching.order_by(A.occurred_at.desc()).offset(count - 1).limit(1))
        bulk = C.id.in_(select(A.contact_id).where(*where[1:], in_build_range(A.contact_id))
                        .group_by(A.contact_id).having(func.count() >= count))
    if op == "fewer_than":
        did, bulk = not_(did), not_(bulk)
    candidates = (_ageing_out(event, window),) if window is not None else ()
    return Compiled(did, events=frozenset({event}), candidates=candidates, bulk=bulk)


def _ageing_out(event: str, days: int) -> Candidates:
    """Contacts with such an event that left the window between two checks."""
    A = Activity.__table__.c

    def query(t0: datetime, t1: datetime) -> Select[Any]:
        return select(A.contact_id).where(
            A.type == event, A.contact_id.is_not(None),
            A.occurred_at > t0 - timedelta(days=days), A.occurred_at <= t1 - timedelta(days=days))
    return query


class _Since:
    @staticmethod
    def days_ago(days: int) -> Any:
        return bindparam(f"since_{days}", type_=UTCDateTime,
                         callable_=lambda: utcnow() - timedelta(days=days))


def _in_segment(condition: dict[str, Any]) -> Compiled:
    try:
        segment_id = int(condition.get("segment"))
    except (TypeError, ValueError):
        raise ConditionError("Choose a segment.") from None
    op = condition.get("op", "in")
    if op not in ("in", "not_in"):
        raise ConditionError("A segment condition is “in” or “not in”.")
    member = select(SegmentMember.contact_id).where(
        SegmentMember.segment_id == segment_id, SegmentMember.contact_id == C.id)
    return _either(op == "in", member, in_build_range(SegmentMember.contact_id),
                   segments=frozenset({segment_id}))


def _created(condition: dict[str, Any]) -> Compiled:
    """When the contact was created: a timestamp, compared with midnights (UTC)."""
    op, column = condition.get("op"), C.created_at
    if op in ("before", "after", "on"):
        day = _midnight(_date(condition.get("value")))
        next_day = day + timedelta(days=1)
        sql = {"before": column < day, "after": column >= next_day,
               "on": and_(column >= day, column < next_day)}[op]
        return Compiled(sql, events=frozenset({"contact_created"}))
    if op != "within_last_days":
        raise ConditionError("A created-date condition is before, after, on or within the last "
                             "N days.")
    days = _days(condition.get("days"))
    since = bindparam(f"created_since_{days}", type_=UTCDateTime,
                      callable_=lambda: _midnight(utcnow().date() - timedelta(days=days)))

    def leaving(t0: datetime, t1: datetime) -> Select[Any]:
        return select(C.id).where(column >= _midnight(t0.date() - timedelta(days=days)),
                                  column < _midnight(t1.date() - timedelta(days=days)))
    return Compiled(column >= since, events=frozenset({"contact_created"}),
                    candidates=(leaving,))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


ENGINE_KINDS: dict[str, Callable[[dict[str, Any]], Compiled]] = {
    "field": _field, "tag": _tag, "list": _list, "stage": _stage, "consent": _consent,
    "company": _company, "activity": _activity, "segment": _in_segment, "created": _created,
}
