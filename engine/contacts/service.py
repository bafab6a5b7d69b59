"""Creating and updating contacts: normalised emails, typed custom fields, companies, tags, lists.

Every function here writes inside the caller's `engine.db.write()`, so a form submission or an
import stores the contact together with whatever caused the change, or nothing at all.
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
from sqlalchemy import insert, select

from engine.contacts.models import (LIFECYCLE_STAGES, Company, Contact, ContactTag, CustomField,
                                    Subscription, Tag)
from engine.db import db, utcnow

# Contact attributes a form field or an import column may set directly; others go to `custom`.
STANDARD_FIELDS = ("email", "first_name", "last_name", "phone", "job_title", "country",
                   "lifecycle_stage")
MAX_LENGTHS = {"email": 320, "first_name": 100, "last_name": 100, "phone": 40, "job_title": 150,
               "country": 2, "lifecycle_stage": 30, "company": 200}
CUSTOM_VALUE_MAX = 2000


class ContactError(ValueError):
    """A value cannot be stored on a contact; the message is fit to show beside the field."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


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


def coerce_custom(field: CustomField, value: Any) -> Any:
    """A custom field's value in its stored form, or a ContactError saying what is wrong."""
    if value is None or value == "":
        return None
    if field.type == "number":
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise ContactError(f"{field.label} must be a number.", field.key) from None
        if not number.is_finite():
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
    text = str(value).strip()
    if len(text) > CUSTOM_VALUE_MAX:
        raise ContactError(f"{field.label} is too long.", field.key)
    return text


FIELDS_CACHE_SECONDS = 2.0


def custom_fields() -> dict[str, CustomField]:
    """The custom field definitions, kept per process for a moment (read by every submission);
    `define_field()` clears this process's copy at once."""
    cache = current_app.extensions.setdefault("magnet.contacts.fields", {})
    now = time.monotonic()
    if now - cache.get("at", -FIELDS_CACHE_SECONDS) >= FIELDS_CACHE_SECONDS:
        fields = {f.key: f for f in db.session.scalars(select(CustomField))}
        for field in fields.values():
            db.session.expunge(field)
        cache.update(at=now, fields=fields)
    return cache["fields"]


def define_field(key: str, label: str, type: str = "text", choices: list[str] | None = None) -> CustomField:
    """Create or change a custom field definition (inside `write()`)."""
    if type not in ("text", "number", "date", "choice"):
        raise ContactError(f"unknown custom field type {type!r}")
    field = db.session.get(CustomField, key) or CustomField(key=key)
    field.label, field.type, field.choices = label, type, list(choices or [])
    db.session.add(field)
    current_app.extensions.pop("magnet.contacts.fields", None)
    return field


def find_by_email(email: str) -> Contact | None:
    """The active contact with this (already normalised) email, following merges."""
    from engine.contacts.identity import resolve
    contact = db.session.scalar(select(Contact).where(Contact.email == email))
    return resolve(contact.id) if contact is not None else None


def company_named(name: str) -> Company:
    name = name.strip()[:200]
    company = db.session.scalar(select(Company).where(Company.name == name))
    if company is None:
        company = Company(name=name, custom={})
        db.session.add(company)
        db.session.flush()
    return company


def clean_values(values: dict[str, Any], fields: dict[str, CustomField] | None = None) -> dict[str, Any]:
    """Check and coerce `{attribute or custom key: value}`; raise ContactError on the first bad one."""
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
                raise ContactError(f"Lifecycle stage must be one of {', '.join(LIFECYCLE_STAGES)}.", key)
            if key == "country":
                text = text.upper()
            clean[key] = text
        elif key in fields:
            clean[key] = coerce_custom(fields[key], value)
        else:
            text = "" if value is None else (value if isinstance(value, (int, float, list)) else str(value).strip())
            if isinstance(text, str) and len(text) > CUSTOM_VALUE_MAX:
                raise ContactError(f"{key} is too long.", key)
            clean[key] = text
    return clean


def apply_values(contact: Contact, values: dict[str, Any], overwrite: bool = True) -> dict[str, Any]:
    """Set cleaned values on a contact; `{field: (old, new)}` of what changed.

    Empty values never erase known ones; with `overwrite=False` known values are kept too (an
    import that only fills gaps).
    """
    changes: dict[str, Any] = {}
    custom = dict(contact.custom or {})
    for key, new in values.items():
        if new is None or new == "" or new == []:
            continue
        if key == "company":
            old = contact.company.name if contact.company else ""
            if old != new and (overwrite or not old):
                contact.company = company_named(new)
                changes["company"] = (old, new)
            continue
        if key in STANDARD_FIELDS:
            old = getattr(contact, key) or ""
            if old != new and (overwrite or not old):
                setattr(contact, key, new)
                changes[key] = (old, new)
            continue
        old = custom.get(key)
        if old != new and (overwrite or old in (None, "")):
            custom[key] = new
            changes[key] = (old, new)
    if custom != (contact.custom or {}):
        contact.custom = custom
    return changes


def upsert(email: str, values: dict[str, Any] | None = None, *, source: dict[str, Any] | None = None,
           overwrite: bool = True) -> tuple[Contact, bool, dict[str, Any]]:
    """Find the contact by normalised email or create it; returns (contact, created, changes).

    Call inside `write()`. `source` (referrer, utm_*, url) becomes the first touch of a new
    contact and the last touch of every contact.
    """
    email = normalise_email(email)
    clean = clean_values(values or {})
    contact = find_by_email(email)
    created = contact is None
    if contact is None:
        contact = Contact(email=email, custom={}, consent_proof={}, first_touch=dict(source or {}),
                          last_touch=dict(source or {}), lifecycle_stage="subscriber")
        db.session.add(contact)
        changes = apply_values(contact, clean)
        db.session.flush()
    else:
        changes = apply_values(contact, clean, overwrite=overwrite)
        if source:
            contact.last_touch = dict(source)
        contact.updated_at = utcnow()
    return contact, created, changes


def grant_consent(contact: Contact, *, form: str, ip: str, text: str) -> None:
    """Record consent with its proof: which form, from which address, and the words shown."""
    contact.consent = "granted"
    contact.consent_at = utcnow()
    contact.consent_proof = {"form": form, "ip": ip, "text": text[:2000]}


def add_tags(contact: Contact, names: list[str], new: bool = False) -> list[str]:
    """Tag a contact (creating tags as needed); returns the names newly added.

    Plain SQL rather than the relationship: it runs on every form submission. `new`: the
    contact was created in this transaction, so it has no tags to look up.
    """
    wanted = {n.strip()[:100] for n in names if n and n.strip()}
    if not wanted:
        return []
    ids = dict(db.session.execute(select(Tag.name, Tag.id).where(Tag.name.in_(wanted))).all())
    for name in sorted(wanted - ids.keys()):
        ids[name] = db.session.execute(insert(Tag.__table__).values(name=name)).inserted_primary_key[0]
    have = set() if new else set(db.session.scalars(
        select(ContactTag.tag_id).where(ContactTag.contact_id == contact.id)))
    added = sorted(name for name in wanted if ids[name] not in have)
    if added:
        db.session.execute(insert(ContactTag.__table__),
                           [{"contact_id": contact.id, "tag_id": ids[name]} for name in added])
        db.session.expire(contact, ["tags"])
    return added


def subscribe(contact: Contact, list_slug: str, *, source: str = "",
              double_opt_in: bool = False) -> Subscription:
    """Put a contact on a list: `pending` until confirmed when double opt-in applies.

    An already confirmed subscription stays confirmed; an unsubscribed one is re-opened (the
    person asked again).
    """
    sub = db.session.scalar(select(Subscription).where(Subscription.contact_id == contact.id,
                                                       Subscription.list_slug == list_slug))
    if sub is None:
        sub = Subscription(contact_id=contact.id, list_slug=list_slug, source=source[:120],
                           status="pending" if double_opt_in else "subscribed",
                           confirmed_at=None if double_opt_in else utcnow())
        db.session.add(sub)
        db.session.flush()
    elif sub.status != "subscribed":
        sub.status = "pending" if double_opt_in else "subscribed"
        sub.confirmed_at = None if double_opt_in else utcnow()
    return sub


def confirm_subscription(subscription_id: int) -> Subscription | None:
    """Confirm a pending double opt-in (inside `write()`); None when nothing was pending."""
    sub = db.session.get(Subscription, subscription_id)
    if sub is None or sub.status != "pending":
        return None
    sub.status = "subscribed"
    sub.confirmed_at = utcnow()
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
