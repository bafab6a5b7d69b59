"""Declared event types: what each event means and which properties it carries, with their types.

Concerns and plugins declare theirs with `register_event_types`; owners add types for events
sent from outside (Admin → Event types). The admin's pickers (segment conditions, scoring and
workflow triggers) offer them, and an event recorded from outside (`POST /api/v1/events`,
`magnet events record`) is checked against its type before anything is stored: an unknown type,
an unknown property or a value of the wrong type is refused with a message saying which.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from engine import plugins
from engine.db import db, write
from engine.events.models import CustomEventType

NAME = re.compile(r"[a-z][a-z0-9_]{1,49}")
MAX_STRING = 1000


class PropertyType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATETIME = "datetime"


class EventTypeError(ValueError):
    """An event that does not match its declared type; the message says what is wrong."""


@dataclass(frozen=True)
class EventType:
    """`name` (lower_snake_case), `label` for people, `properties` {name: PropertyType}.

    `external`: whether it may be recorded from outside (the API, the CLI); the engine's and
    plugins' own types (a form submission, a page view) are recorded only by their code.

    `sentence`: how the contact page's timeline words one event, e.g. "Viewed {title|path}":
    `{a|b}` is the first of these properties that has a value (`url` is the event's page),
    `{name:file}` a file name made readable, `{name:host}` an address's host. Without it, or
    when a property it needs is empty, the timeline shows the label. `links_page`: the
    sentence's first value links to the event's page (`engine.events.wording`)."""

    name: str
    label: str
    properties: dict[str, PropertyType] = field(default_factory=dict)
    description: str = ""
    external: bool = False
    source: str = ""  # the concern or plugin that declared it, or "custom"
    sentence: str = ""
    links_page: bool = False


def all_types() -> dict[str, EventType]:
    """Every declared type: the enabled plugins' and the engine's, then the owners' own."""
    found: dict[str, EventType] = {}
    for slug, declared in plugins.current().collect("register_event_types"):
        found.setdefault(declared.name, EventType(**{**declared.__dict__, "source": slug}))
    for row in db.session.scalars(select(CustomEventType)):
        found.setdefault(row.name, EventType(
            row.name, row.label, {k: PropertyType(v) for k, v in (row.properties or {}).items()},
            row.description, external=True, source="custom"))
    return found


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise EventTypeError("An event type is 2 to 50 lower-case letters, digits or "
                             "underscores, starting with a letter (e.g. cart_abandoned).")
    return name


def check_external(name: Any, properties: Any, types: dict[str, EventType] | None = None
                   ) -> tuple[EventType, dict[str, Any]]:
    """The type and the cleaned properties of an event sent from outside, or EventTypeError.
    `types`: the declared types, when the caller keeps them (else they are read now)."""
    check_name(name)
    declared = (types if types is not None else all_types()).get(name)
    if declared is None:
        raise EventTypeError(f"Unknown event type “{name}”. Declare it first (Admin → Event "
                             "types), or use one of the declared types.")
    if not declared.external:
        raise EventTypeError(f"“{name}” events are recorded by the site itself and cannot be "
                             "sent from outside.")
    return declared, check_properties(declared, properties)


def check_properties(declared: EventType, properties: Any) -> dict[str, Any]:
    if properties is None:
        return {}
    if not isinstance(properties, dict):
        raise EventTypeError("“properties” must be an object of names and values.")
    clean: dict[str, Any] = {}
    for name, value in properties.items():
        kind = declared.properties.get(name)
        if kind is None:
            known = ", ".join(sorted(declared.properties)) or "none"
            raise EventTypeError(f"“{declared.name}” events have no property “{name}” "
                                 f"(known: {known}).")
        if value is None:
            continue
        clean[name] = _value(declared.name, name, kind, value)
    return clean


def _value(event: str, name: str, kind: PropertyType, value: Any) -> Any:
    wrong = EventTypeError(f"Property “{name}” of “{event}” must be a {kind.value}.")
    if kind is PropertyType.STRING:
        if not isinstance(value, str) or "\x00" in value:
            raise wrong
        if len(value) > MAX_STRING:
            raise EventTypeError(f"Property “{name}” is longer than {MAX_STRING} characters.")
        return value
    if kind is PropertyType.NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value) or abs(value) >= 1e15:
            raise wrong
        return value
    if kind is PropertyType.BOOLEAN:
        if not isinstance(value, bool):
            raise wrong
        return value
    if not isinstance(value, str):
        raise wrong
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise wrong from None
    if moment.tzinfo is None:
        raise EventTypeError(f"Property “{name}” needs a time zone (e.g. 2026-12-01T09:00Z).")
    return moment.isoformat()


def parse_cli_value(declared: EventType, name: str, raw: str) -> Any:
    """A `--prop name=value` from the command line, read as the property's declared type."""
    kind = declared.properties.get(name)
    if kind is PropertyType.NUMBER:
        try:
            return float(raw) if any(c in raw for c in ".eE") else int(raw)
        except ValueError:
            raise EventTypeError(f"Property “{name}” of “{declared.name}” must be a number.") \
                from None
    if kind is PropertyType.BOOLEAN:
        if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise EventTypeError(f"Property “{name}” of “{declared.name}” must be true or false.")
        return raw.lower() in ("true", "1", "yes")
    return raw


# --- the owners' own types (Admin → Event types) -----------------------------------------------

PROPERTY_NAME = re.compile(r"[a-z][a-z0-9_]{0,49}")
MAX_PROPERTIES = 30


def declare_custom(name: Any, label: Any, properties: dict[str, Any],
                   description: Any = "") -> CustomEventType:
    """Declare a type for events sent from outside (inside or outside a `write()`);
    EventTypeError says what is wrong, and nothing is stored then."""
    check_name(name)
    label = str(label or "").strip()[:200]
    if not label:
        raise EventTypeError("Give the event type a label, e.g. “Abandoned a cart”.")
    if len(properties) > MAX_PROPERTIES:
        raise EventTypeError(f"An event type has at most {MAX_PROPERTIES} properties.")
    clean: dict[str, str] = {}
    for prop, kind in properties.items():
        if not isinstance(prop, str) or not PROPERTY_NAME.fullmatch(prop):
            raise EventTypeError(f"“{prop}” cannot be a property: use 1 to 50 lower-case "
                                 "letters, digits or underscores, starting with a letter.")
        if kind not in {t.value for t in PropertyType}:
            raise EventTypeError(f"Property “{prop}”: choose a type among "
                                 f"{', '.join(t.value for t in PropertyType)}.")
        clean[prop] = str(kind)
    taken = EventTypeError(f"“{name}” is declared already.")
    try:
        with write() as session:
            if name in all_types():
                raise taken
            row = CustomEventType(name=name, label=label, properties=clean,
                                  description=str(description or "").strip()[:1000])
            session.add(row)
            session.flush()
    except IntegrityError:  # declared at the same moment by someone else (PostgreSQL)
        raise taken from None
    return row


def delete_custom(name: str) -> CustomEventType | None:
    """Forget an owner's type (events already stored keep their type); None if there is no
    such custom type."""
    with write() as session:
        row = session.get(CustomEventType, name)
        if row is not None:
            session.delete(row)
    return row
