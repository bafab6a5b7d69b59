"""Owners' definitions of custom fields for contacts and companies: define, relabel, reorder,
edit a choice field's options, retire and restore.

A field's key and type never change once defined: values are stored under the key and were
checked against the type, so changing either would strand or misread them. What people see
(the label, the options, the order) may change at any time. Retiring hides a field from forms
and editing without touching the values stored under it; restoring shows it again.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any

from sqlalchemy import select

from engine.contacts.models import FIELD_ENTITIES, FIELD_TYPES, CustomField
from engine.contacts.service import custom_fields, define_field, forget_fields
from engine.contacts.store import STANDARD_FIELDS, ContactError
from engine.db import db

KEY = re.compile(r"^[a-z][a-z0-9_]{0,59}$")
# Keys the contact and company records use themselves (and the import's own column names).
RESERVED = set(STANDARD_FIELDS) | {"company", "tags", "name", "domain", "consent", "owner",
                                   "id", "status", "created_at", "updated_at", "email"}
CHOICE_TYPES = ("choice", "multi_choice")
MAX_CHOICES = 100
TYPE_LABELS = {"text": "Text", "number": "Number", "date": "Date", "choice": "Choice (one)",
               "multi_choice": "Choice (several)", "boolean": "Yes / no"}


def ordered(entity: str) -> list[CustomField]:
    """An entity's fields, retired ones included, in their order."""
    return list(db.session.scalars(select(CustomField).where(CustomField.entity == entity)
                                   .order_by(CustomField.position, CustomField.label)))


def _label(raw: Any) -> str:
    label = " ".join(str(raw or "").split())
    if not label:
        raise ContactError("Give the field a label, e.g. “Team size”.", "label")
    if len(label) > 150:
        raise ContactError("The label is too long (150 characters at most).", "label")
    return label


def parse_choices(raw: str, kind: str) -> list[str]:
    """A choice field's options, one per line, each once, in the order typed."""
    if kind not in CHOICE_TYPES:
        return []
    found: list[str] = []
    for line in (raw or "").splitlines():
        option = " ".join(line.split())
        if len(option) > 200:
            raise ContactError("An option is at most 200 characters.", "choices")
        if ";" in option:
            raise ContactError("An option cannot contain “;” (it separates several in a CSV).",
                               "choices")
        if option and option not in found:
            found.append(option)
    if not found:
        raise ContactError("A choice field needs its options, one per line.", "choices")
    if len(found) > MAX_CHOICES:
        raise ContactError(f"A field has at most {MAX_CHOICES} options.", "choices")
    return found


def key_from_label(label: str) -> str:
    """The key a field gets when none is typed: its label in lower-case ASCII letters, digits
    and underscores ("Budget band (£)" → `budget_band`), or "" when nothing of it is left."""
    ascii_label = unicodedata.normalize("NFKD", label or "").encode("ascii", "ignore").decode()
    key = re.sub(r"[^a-z0-9]+", "_", ascii_label.lower()).strip("_")
    key = re.sub(r"^[0-9_]+", "", key)
    return key[:60].rstrip("_")


def define(entity: str, key: str, label: str, kind: str, choices: str = "") -> CustomField:
    """A new field (inside `write()`), placed last; ContactError says what is wrong."""
    if entity not in FIELD_ENTITIES:
        raise ContactError("Choose contacts or companies.", "entity")
    key = (key or "").strip().lower() or key_from_label(label)
    if not KEY.match(key):
        raise ContactError("The key is 1 to 60 lower-case letters, digits or underscores, "
                           "starting with a letter (e.g. team_size).", "key")
    if key in RESERVED:
        raise ContactError(f"“{key}” is a built-in field already.", "key")
    if db.session.get(CustomField, (entity, key)) is not None:
        raise ContactError(f"There is a field “{key}” already.", "key")
    if kind not in FIELD_TYPES:
        raise ContactError("Choose a type.", "type")
    return define_field(key, _label(label), kind, parse_choices(choices, kind), entity=entity)


def change(field: CustomField, label: str, choices: str = "") -> dict[str, tuple[Any, Any]]:
    """Relabel a field and, for a choice field, set its options (inside `write()`);
    `{what: (old, new)}` of what changed. Values stored under an option taken away stay."""
    changes: dict[str, tuple[Any, Any]] = {}
    label = _label(label)
    if label != field.label:
        changes["label"] = (field.label, label)
        field.label = label
    options = parse_choices(choices, field.type)
    if field.type in CHOICE_TYPES and options != list(field.choices or []):
        changes["choices"] = (list(field.choices or []), options)
        field.choices = options
    if changes:
        forget_fields()
    return changes


def move(field: CustomField, step: int) -> bool:
    """Move a field one place up (-1) or down (+1) among its entity's (inside `write()`);
    positions are renumbered 1… so they stay distinct. False at either end."""
    fields = ordered(field.entity)
    index = next(i for i, f in enumerate(fields) if f.key == field.key)
    other = index + step
    if not 0 <= other < len(fields):
        return False
    fields[index], fields[other] = fields[other], fields[index]
    for position, item in enumerate(fields, start=1):
        item.position = position
    forget_fields()
    return True


def set_retired(field: CustomField, retired: bool) -> bool:
    """Retire or restore a field (inside `write()`); whether that changed anything."""
    if bool(field.retired) == retired:
        return False
    field.retired = retired
    forget_fields()
    return True


def labelled(values: dict[str, Any] | None, entity: str = "contact") -> list[tuple[str, Any]]:
    """`[(label, value)]` of stored custom values, defined fields first in their order under
    their labels, then any value whose field is gone under its key."""
    fields, custom = custom_fields(entity), dict(values or {})
    shown = [(f.label, custom.pop(key)) for key, f in fields.items() if key in custom]
    return shown + sorted(custom.items())
