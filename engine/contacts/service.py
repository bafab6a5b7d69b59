"""Creating and updating contacts: normalised emails, typed custom fields, companies, tags, lists.

Every function here writes inside the caller's `engine.db.write()`, so a form submission or an
import stores the contact together with whatever caused the change, or nothing at all. The
writing itself is `engine.contacts.store`'s (Core statements); these functions give callers that
hold ORM objects the same rules.
"""
from __future__ import annotations

import re
import time
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import func, select

from engine import events
from engine.contacts import store
from engine.contacts.identity import resolve
from engine.contacts.models import (
    FIELD_ENTITIES,
    FIELD_TYPES,
    LIFECYCLE_STAGES,
    Company,
    Contact,
    CustomField,
    Subscription,
)
from engine.contacts.store import STANDARD_FIELDS, ContactError
from engine.db import db, utcnow

MAX_LENGTHS = {"email": 320, "first_name": 100, "last_name": 100, "phone": 40, "job_title": 150,
               "country": 2, "lifecycle_stage": 30, "company": 200}
CUSTOM_VALUE_MAX = 2000


# The common shape of a local part (RFC 5322 dot-atom, ASCII); anything else takes the full path.
DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


def normalise_email(raw: str) -> str:
    """Trimmed, lower-cased, domain IDNA-encoded; syntax checked without network look-ups.

    Lower-casing the local part is a deliberate choice: nearly every provider ignores its case,
    and two contacts differing only by case are always the same person in practice. Domains
    repeat (a list of 100,000 people has a few thousand), so each is checked once per process;
    an ordinary ASCII local part is checked by a regex, any other by email-validator in full.
    """
    raw = (raw or "").strip()
    if not raw or len(raw) > 320:
        raise ContactError("Enter a valid email address.", "email")
    local, at, domain = raw.rpartition("@")
    if at and 0 < len(local) <= 64 and DOT_ATOM.match(local):
        ascii_domain = _checked_domain(domain)
        if ascii_domain.startswith("!"):
            raise ContactError(f"Enter a valid email address ({ascii_domain[1:]}).", "email")
        email = f"{local}@{ascii_domain}".lower()
        if len(email) <= 254:
            return email
    try:
        result = validate_email(raw, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ContactError(f"Enter a valid email address ({exc}).", "email") from None
    return f"{result.local_part}@{result.ascii_domain}".lower()


@lru_cache(maxsize=8192)
def _checked_domain(domain: str) -> str:
    """The domain's ASCII form, or '!' and the reason it is refused."""
    try:
        return validate_email(f"a@{domain}", check_deliverability=False).ascii_domain
    except EmailNotValidError as exc:
        return f"!{exc}"


BOOLEAN_WORDS = {"true": True, "yes": True, "1": True, "on": True, "y": True,
                 "false": False, "no": False, "0": False, "off": False, "n": False}


def coerce_custom(field: CustomField, value: Any) -> Any:
    """A custom field's value in its stored form, or a ContactError saying what is wrong.

    The one check of a custom value by its type, wherever it is written: the admin's forms,
    imports, public forms and the workflows' steps."""
    if value is None or value == "" or value == []:
        return None
    if field.type == "number":
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise ContactError(f"{field.label} must be a number.", field.key) from None
        if not number.is_finite() or abs(number) >= Decimal("1e15"):
            raise ContactError(f"{field.label} must be a number.", field.key)
        return int(number) if number == number.to_integral_value() else float(number)
    if field.type == "date":
        if isinstance(value, (date, datetime)):
            return value.isoformat()[:10]
        try:
            return date.fromisoformat(str(value).strip()).isoformat()
        except ValueError:
            raise ContactError(f"{field.label} must be a date (YYYY-MM-DD).", field.key) from None
    if field.type == "choice":
        if str(value) not in field.choices:
            raise ContactError(f"{field.label}: choose one of the options offered.", field.key)
        return str(value)
    if field.type == "multi_choice":
        # A list from a form's checkboxes; "a;b" from a CSV cell (as the export writes lists).
        items = value if isinstance(value, (list, tuple)) else str(value).split(";")
        chosen = {str(item).strip() for item in items if str(item).strip()}
        if chosen - set(field.choices):
            raise ContactError(f"{field.label}: choose among the options offered.", field.key)
        return [choice for choice in field.choices if choice in chosen] or None
    if field.type == "boolean":
        if isinstance(value, bool):
            return value
        word = BOOLEAN_WORDS.get(str(value).strip().lower())
        if word is None:
            raise ContactError(f"{field.label} must be yes or no.", field.key)
        return word
    text = str(value).strip()
    if len(text) > CUSTOM_VALUE_MAX:
        raise ContactError(f"{field.label} is too long.", field.key)
    return text


FIELDS_CACHE_SECONDS = 2.0


def _definitions() -> dict[str, dict[str, CustomField]]:
    """Every field definition by entity, kept per process for a moment (read by every
    submission); `forget_fields()` clears this process's copy at once."""
    cache = current_app.extensions.setdefault("magnet.contacts.fields", {})
    now = time.monotonic()
    if now - cache.get("at", -FIELDS_CACHE_SECONDS) >= FIELDS_CACHE_SECONDS:
        found: dict[str, dict[str, CustomField]] = {entity: {} for entity in FIELD_ENTITIES}
        query = select(CustomField).order_by(CustomField.position, CustomField.label)
        for field in db.session.scalars(query):
            db.session.expunge(field)
            found.setdefault(field.entity, {})[field.key] = field
        cache.update(at=now, fields=found)
    return cache["fields"]


def forget_fields() -> None:
    current_app.extensions.pop("magnet.contacts.fields", None)


def custom_fields(entity: str = "contact") -> dict[str, CustomField]:
    """The custom fields of contacts (or companies), retired ones included, in their order:
    values stored under a retired field are still checked, shown and usable in segments."""
    return _definitions().get(entity, {})


def active_fields(entity: str = "contact") -> dict[str, CustomField]:
    """The fields that forms and editing offer: those not retired, in their order."""
    return {key: f for key, f in custom_fields(entity).items() if not f.retired}


def define_field(key: str, label: str, type: str = "text",
                 choices: list[str] | None = None, *, entity: str = "contact") -> CustomField:
    """Create or change a custom field definition (inside `write()`). A new one goes last."""
    if type not in FIELD_TYPES:
        raise ContactError(f"unknown custom field type {type!r}")
    if entity not in FIELD_ENTITIES:
        raise ContactError(f"unknown entity {entity!r}")
    field = db.session.get(CustomField, (entity, key))
    if field is None:
        last = db.session.scalar(select(func.max(CustomField.position))
                                 .where(CustomField.entity == entity))
        field = CustomField(entity=entity, key=key, position=(last or 0) + 1, retired=False)
    field.label, field.type, field.choices = label, type, list(choices or [])
    db.session.add(field)
    forget_fields()
    return field


def find_by_email(email: str) -> Contact | None:
    """The active contact with this (already normalised) email, following merges."""
    contact = db.session.scalar(select(Contact).where(Contact.email == email))
    return resolve(contact.id) if contact is not None else None


def company_named(name: str) -> Company:
    """The company with this name, created when there is none (inside `write()`)."""
    return db.session.get(Company, store.company_id(name))


def clean_values(values: dict[str, Any],
                 fields: dict[str, CustomField] | None = None) -> dict[str, Any]:
    """Check and coerce `{attribute or custom key: value}`;
    raise ContactError on the first bad one."""
    fields = custom_fields() if fields is None else fields
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if key == "email":
            continue
        if key in MAX_LENGTHS:
            text = "" if value is None else str(value).strip()
            if len(text) > MAX_LENGTHS[key]:
                raise ContactError(f"{key.replace('_', ' ').capitalize()} is too long.", key)
            if key == "lifecycle_stage" and text and text not in LIFECYCLE_STAGES:
                raise ContactError("Lifecycle stage must be one of "
                                   f"{', '.join(LIFECYCLE_STAGES)}.", key)
            if key == "country":
                text = text.upper()
            clean[key] = text
        elif key in fields:
            clean[key] = coerce_custom(fields[key], value)
        else:
            text = "" if value is None else (value if isinstance(value, (int, float, list))
                                             else str(value).strip())
            if isinstance(text, str) and len(text) > CUSTOM_VALUE_MAX:
                raise ContactError(f"{key} is too long.", key)
            clean[key] = text
    return clean


def would_change(contact: Contact, values: dict[str, Any], overwrite: bool = True) -> bool:
    """Whether `apply_values` would change the contact (an import's dry run asks)."""
    return bool(_changes(contact, values, overwrite))


def _changes(contact: Contact, values: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    current = {key: getattr(contact, key) for key in STANDARD_FIELDS if key in values}
    if "company" in values:
        current["company"] = contact.company.name if contact.company else ""
    return store.changed_values(current, contact.custom or {}, values, overwrite)


def apply_values(contact: Contact, values: dict[str, Any],
                 overwrite: bool = True) -> dict[str, Any]:
    """Set cleaned values on a loaded contact; `{field: (old, new)}` of what changed.

    Empty values never erase known ones; with `overwrite=False` known values are kept too (an
    import that only fills gaps). The rules are `store.changed_values`, shared with `upsert`.
    """
    changes = _changes(contact, values, overwrite)
    custom = dict(contact.custom or {})
    for key, (_, new) in changes.items():
        if key == "company":
            contact.company = company_named(new)
        elif key in STANDARD_FIELDS:
            setattr(contact, key, new)
        else:
            custom[key] = new
    if custom != (contact.custom or {}):
        contact.custom = custom
    store.changed(contact.id, changes)
    return changes


def upsert(email: str, values: dict[str, Any] | None = None, *,
           source: dict[str, Any] | None = None,
           overwrite: bool = True) -> tuple[Contact, bool, dict[str, Any]]:
    """Find the contact by normalised email or create it; returns (contact, created, changes).

    Call inside `write()`. `source` (referrer, utm_*, url) becomes the first touch of a new
    contact and the last touch of every contact. The writing is `store.save`'s (the form
    pipeline calls that directly, without loading the contact).
    """
    saved = store.save(normalise_email(email), clean_values(values or {}), source=source,
                       overwrite=overwrite)
    contact = db.session.get(Contact, saved.id, populate_existing=True)
    return contact, saved.created, saved.changes


def consent_values(*, form: str, ip: str, text: str) -> dict[str, Any]:
    """The contact columns that record consent with its proof: which form, from which address,
    and the words shown."""
    return {"consent": "granted", "consent_at": utcnow(),
            "consent_proof": {"form": form, "ip": ip, "text": text[:2000]}}


def grant_consent(contact: Contact, *, form: str, ip: str, text: str) -> None:
    """Record consent on a loaded contact (see `consent_values`)."""
    for key, value in consent_values(form=form, ip=ip, text=text).items():
        setattr(contact, key, value)


def add_tags(contact: Contact, names: list[str]) -> int:
    """Tag a contact, creating tags as needed (inside `write()`); returns how many were added."""
    added = store.tag(contact.id, names)
    if added:
        db.session.expire(contact, ["tags"])
    return added


def subscribe(contact: Contact, list_slug: str, *, source: str = "",
              double_opt_in: bool = False) -> Subscription:
    """Put a contact on a list: `pending` until confirmed when double opt-in applies.

    An already confirmed subscription stays confirmed; an unsubscribed or pending one is
    re-opened as `pending`, for the person to confirm. See `store.subscribe`, which does it for
    many lists in the hot path.
    """
    store.subscribe(contact.id, [list_slug], source=source, double_opt_in=double_opt_in)
    return db.session.scalars(select(Subscription).where(
        Subscription.contact_id == contact.id, Subscription.list_slug == list_slug)
        .execution_options(populate_existing=True)).one()


def subscribers_of(subscription_ids: list[int]) -> list[int]:
    """The active contacts holding these subscriptions (following merges)."""
    holders = set(db.session.scalars(select(Subscription.contact_id).where(
        Subscription.id.in_(subscription_ids))))
    found = {contact.id for contact in map(resolve, holders) if contact is not None}
    return sorted(found)


def confirm_subscription(subscription_id: int) -> Subscription | None:
    """Confirm a pending double opt-in (inside `write()`); None when nothing was pending."""
    sub = db.session.get(Subscription, subscription_id)
    if sub is None or sub.status != "pending":
        return None
    sub.status = "subscribed"
    sub.confirmed_at = utcnow()
    events.defer([{"type": "subscription_confirmed", "contact_id": sub.contact_id,
                   "properties": {"list": sub.list_slug}}])
    return sub


def known_values(contact: Contact) -> dict[str, Any]:
    """What the site knows about a contact, keyed like form fields (for prefill and profiling)."""
    known: dict[str, Any] = {k: getattr(contact, k) for k in STANDARD_FIELDS if getattr(contact, k)}
    if contact.company is not None:
        known["company"] = contact.company.name
    known.update({k: v for k, v in (contact.custom or {}).items() if v not in (None, "", [])})
    if contact.consent == "granted":
        known["consent"] = True
    return known


def snapshot(contact: Contact) -> dict[str, Any]:
    """A JSON copy of a contact's own columns (for merge records and GDPR exports)."""
    data = {}
    for column in Contact.__table__.columns:
        value = getattr(contact, column.key)
        data[column.key] = value.isoformat() if isinstance(value, datetime) else value
    return data
