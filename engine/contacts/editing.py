"""A contact added or edited by hand in the admin: every value checked as an import checks it,
then only what changed is written, each change an event and the whole an audit entry.

Unlike a form or an import, an editor may clear a value (an import's empty cell means "not
known here", an editor's empty box means "no longer true"). Consent is the person's own act: a
contact added by hand has none (`unknown`) unless the editor says they agreed, and how; the
editor and the moment are kept as the proof. A consent given or withdrawn by the person is
never changed from here. Lists follow `engine.contacts.lists`: an editor vouches for a
subscription, but never puts back someone who unsubscribed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from engine import audit
from engine.contacts import companies, store
from engine.contacts.models import LIFECYCLE_STAGES, Contact, Subscription
from engine.contacts.service import active_fields, clean_values, find_by_email, normalise_email
from engine.contacts.store import ContactError
from engine.db import db, utcnow, write

EDITED = ("first_name", "last_name", "phone", "job_title", "country", "lifecycle_stage")
LIST_STATUSES = ("subscribed", "pending", "unsubscribed")
MAX_TAGS = 50


class Invalid(ContactError):
    """Values that cannot be saved: `errors` is `{field: message}` to show beside each."""

    def __init__(self, errors: dict[str, str], existing: Contact | None = None) -> None:
        super().__init__(next(iter(errors.values())), next(iter(errors)))
        self.errors = errors
        self.existing = existing  # the contact that already has the address typed


@dataclass
class Edit:
    """What an editor submitted, as typed."""

    email: str
    values: dict[str, Any]  # EDITED fields, "company", and custom keys
    tags: list[str] = field(default_factory=list)
    lists: dict[str, str] = field(default_factory=dict)  # slug: status, "" for not on it
    owner_id: int | None = None
    consent_text: str | None = None  # how the person agreed, when the editor says they did
    # Custom values submitted as they were shown: kept as stored, not checked again (a choice
    # since taken off the field's options stays until someone changes it).
    kept: dict[str, Any] = field(default_factory=dict)


@dataclass
class Clean:
    email: str
    values: dict[str, Any]
    tags: list[str]
    lists: dict[str, str]
    owner_id: int | None
    consent_text: str | None


def check(edit: Edit, contact: Contact | None, owners: dict[int, str]) -> Clean:
    """The edit's values checked and in their stored form; Invalid with every problem."""
    errors: dict[str, str] = {}
    existing = None
    try:
        email = normalise_email(edit.email)
        existing = find_by_email(email)
        if existing is not None and (contact is None or existing.id != contact.id):
            errors["email"] = f"{email} is already a contact."
    except ContactError as exc:
        email, errors["email"] = "", str(exc)
    fields = active_fields()
    values: dict[str, Any] = {}
    for key, value in edit.values.items():
        if key not in EDITED and key != "company" and key not in fields:
            continue
        if key in edit.kept and key in fields:
            values[key] = edit.kept[key]
            continue
        try:
            values.update(clean_values({key: value}, fields))
        except ContactError as exc:
            errors[key if key in EDITED or key == "company" else f"custom.{key}"] = str(exc)
    if not values.get("lifecycle_stage"):
        values["lifecycle_stage"] = "subscriber"
    if values["lifecycle_stage"] not in LIFECYCLE_STAGES:
        errors["lifecycle_stage"] = "Choose a lifecycle stage."
    tags = sorted({t.strip()[:100] for t in edit.tags if t and t.strip()})
    if len(tags) > MAX_TAGS:
        errors["tags"] = f"A contact has at most {MAX_TAGS} tags."
    for status in edit.lists.values():
        if status and status not in LIST_STATUSES:
            errors["lists"] = "Choose subscribed, pending or unsubscribed for each list."
    if edit.owner_id is not None and edit.owner_id not in owners:
        errors["owner_id"] = "Choose one of the site's users."
    consent_text = None
    if edit.consent_text is not None:
        consent_text = " ".join(edit.consent_text.split())[:500]
        if not consent_text:
            errors["consent_text"] = ("Say how they agreed (e.g. “signed the paper form at the "
                                      "trade fair, 3 May”): it is the proof of their consent.")
    if contact is not None:
        statuses = _list_statuses(contact.id)
        for slug, status in edit.lists.items():
            now = statuses.get(slug, "")
            if status == "subscribed" and now == "unsubscribed":
                errors["lists"] = (f"They unsubscribed from “{slug}”: only they can join it "
                                   "again, through a sign-up form.")
            elif status == "subscribed" and contact.consent == "withdrawn" and now != status:
                errors["lists"] = "They withdrew their consent: they cannot be put on a list."
    if errors:
        raise Invalid(errors, existing if "email" in errors else None)
    return Clean(email, values, tags, {k: v for k, v in edit.lists.items() if v},
                 edit.owner_id, consent_text)


def _list_statuses(contact_id: int) -> dict[str, str]:
    return dict(db.session.execute(select(Subscription.list_slug, Subscription.status)
                                   .where(Subscription.contact_id == contact_id)).all())


def _consent(text: str, actor: Any) -> dict[str, Any]:
    """Consent with its proof: the editor who vouched for it, when, and how it was given."""
    return {"consent": "granted", "consent_at": utcnow(),
            "consent_proof": {"form": "admin", "by": str(getattr(actor, "email", actor)),
                              "text": text, "ip": ""}}


def create(edit: Edit, actor: Any, owners: dict[int, str]) -> Contact:
    """Add a contact by hand; Invalid (nothing stored) when a value is wrong."""
    clean = check(edit, None, owners)
    values = {k: v for k, v in clean.values.items() if v not in (None, "", [])}
    with write():
        if not values.get("company"):
            match = companies.company_for_email(clean.email)
            if match is not None:
                values["company"] = match.name
        consent = _consent(clean.consent_text, actor) if clean.consent_text else None
        saved = store.save(clean.email, values, source={"source": "admin"}, consent=consent,
                           origin="admin")
        contact = db.session.get(Contact, saved.id, populate_existing=True)
        if clean.owner_id is not None:
            contact.owner_id = clean.owner_id
        store.tag(contact.id, clean.tags)
        _set_lists(contact.id, clean.lists, {}, actor)
        details = dict(values)
        details.update(email=clean.email, owner=owners.get(clean.owner_id or 0, ""),
                       tags=clean.tags, lists=clean.lists,
                       consent=contact.consent)
        audit.record(actor, "contact.create", f"contact {contact.id}",
                     {"new": {k: v for k, v in details.items() if v not in (None, "", [], {})}})
    return contact


def update(contact: Contact, edit: Edit, actor: Any, owners: dict[int, str]
           ) -> dict[str, tuple[Any, Any]]:
    """Save an editor's changes to a contact; `{field: (old, new)}` of what changed, {} (and
    nothing recorded) when nothing did. Invalid (nothing stored) when a value is wrong."""
    clean = check(edit, contact, owners)
    with write():
        contact = db.session.get(Contact, contact.id, populate_existing=True)
        changes: dict[str, tuple[Any, Any]] = {}
        if clean.email != contact.email:
            changes["email"] = (contact.email, clean.email)
            contact.email = clean.email
        for key in EDITED:
            old, new = getattr(contact, key) or "", clean.values.get(key, "") or ""
            if key in clean.values and old != new:
                changes[key] = (old, new)
                setattr(contact, key, new)
        company = (clean.values.get("company") or "").strip()
        if not company and "company" in clean.values and contact.company is None:
            match = companies.company_for_email(clean.email)
            company = match.name if match is not None else ""
        old_company = contact.company.name if contact.company else ""
        if "company" in clean.values and company != old_company:
            changes["company"] = (old_company, company)
            contact.company_id = store.company_id(company) if company else None
        custom = dict(contact.custom or {})
        for key in active_fields():
            if key not in clean.values:
                continue
            old, new = custom.get(key), clean.values[key]
            if old != new:
                changes[key] = (old, new)
                if new is None:
                    custom.pop(key, None)
                else:
                    custom[key] = new
        if custom != (contact.custom or {}):
            contact.custom = custom
        if clean.owner_id != contact.owner_id:
            changes["owner"] = (owners.get(contact.owner_id or 0, ""),
                                owners.get(clean.owner_id or 0, ""))
            contact.owner_id = clean.owner_id
        if clean.consent_text and contact.consent in ("", "unknown"):
            consent = _consent(clean.consent_text, actor)
            changes["consent"] = (contact.consent or "unknown", "granted")
            for key, value in consent.items():
                setattr(contact, key, value)
        store.changed(contact.id, changes)  # field_changed (and stage_changed) events
        have = {t.name for t in contact.tags}
        if added := sorted(set(clean.tags) - have):
            store.tag(contact.id, added)
            changes["tags added"] = ("", ", ".join(added))
        if removed := sorted(have - set(clean.tags)):
            store.untag(contact.id, removed)
            changes["tags removed"] = (", ".join(removed), "")
        changes.update(_set_lists(contact.id, clean.lists, _list_statuses(contact.id), actor))
        if changes:
            contact.updated_at = utcnow()
            audit.record(actor, "contact.update", f"contact {contact.id}",
                         {"changes": {k: [_plain(o), _plain(n)] for k, (o, n) in changes.items()}})
            db.session.expire(contact, ["tags", "company"])
    return changes


def _set_lists(contact_id: int, wanted: dict[str, str], now: dict[str, str],
               actor: Any) -> dict[str, tuple[Any, Any]]:
    """Bring the contact's subscriptions to `wanted` (`{slug: status}`; a list not named is
    left as it is). Each join or leave is a `list_joined` / `list_left` event (the store's)."""
    changes: dict[str, tuple[Any, Any]] = {}
    by = f"admin:{getattr(actor, 'email', actor)}"[:120]
    for slug, status in sorted(wanted.items()):
        old = now.get(slug, "")
        if status == old:
            continue
        if status == "unsubscribed":
            store.unsubscribe(contact_id, [slug])
        elif status == "subscribed":
            store.subscribe_confirmed([contact_id], slug, source=by)
        elif status == "pending" and old == "":
            store.subscribe(contact_id, [slug], source=by, double_opt_in=True)
        else:  # pending from subscribed or unsubscribed: only the person's sign-up does that
            continue
        changes[f"list {slug}"] = (old, status)
    return changes


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, int, float, bool, list)) \
        else str(value)

