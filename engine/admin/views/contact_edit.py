"""Adding and editing a contact by hand (editors and owners), and notes on a contact.

The checking and writing are `engine.contacts.editing`'s (the import's validators, events and
an audit entry for each save that changes something); this module reads the form and shows it.
"""
from __future__ import annotations

from typing import Any

import pycountry
from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from engine import audit
from engine.admin.blueprint import bp
from engine.auth import require_role
from engine.auth.models import User
from engine.contacts import editing, lists, notes
from engine.contacts.models import LIFECYCLE_STAGES, Company, Contact, ContactNote, Subscription
from engine.contacts.service import active_fields
from engine.contacts.store import ContactError
from engine.db import db, write
from engine.forms.service import lists_named

COUNTRIES = sorted(((c.alpha_2, c.name) for c in pycountry.countries), key=lambda c: c[1])
EDITED = ("email", "first_name", "last_name", "phone", "job_title", "country", "company",
          "lifecycle_stage")


def _owners() -> dict[int, str]:
    """`{user id: label}` of every account (a contact's owner may have been deactivated)."""
    return {u.id: (f"{u.name} ({u.email})" if u.name else u.email)
            for u in db.session.scalars(select(User).order_by(User.email))}


def shown(value: Any, field: Any) -> Any:
    """A stored custom value as its input shows it (and submits it back unchanged)."""
    if value is None:
        return [] if field.type == "multi_choice" else ""
    if field.type == "boolean":
        return "yes" if value else "no"
    if field.type == "multi_choice":
        return list(value) if isinstance(value, list) else [str(value)]
    return str(value)


def _known_lists(contact_id: int | None) -> dict[str, str]:
    """`{slug: status}` of every list offered: the lists with anyone on them or a form naming
    them, with this contact's status on each ("" for none)."""
    slugs = set(lists.counts()) | set(lists_named())
    mine: dict[str, str] = {}
    if contact_id is not None:
        mine = dict(db.session.execute(select(Subscription.list_slug, Subscription.status)
                                       .where(Subscription.contact_id == contact_id)).all())
    return {slug: mine.get(slug, "") for slug in sorted(slugs | set(mine))}


def _values_of(contact: Contact) -> dict[str, Any]:
    values = {key: getattr(contact, key) or "" for key in EDITED if key != "company"}
    values["company"] = contact.company.name if contact.company else ""
    fields = active_fields()
    values.update({f"custom.{key}": shown((contact.custom or {}).get(key), field)
                   for key, field in fields.items()})
    values["tags"] = ", ".join(sorted(t.name for t in contact.tags))
    values["owner_id"] = str(contact.owner_id or "")
    return values


def _posted(contact: Contact | None) -> tuple[editing.Edit, dict[str, Any]]:
    """The edit the form posted, and the values to show again if it is refused."""
    form = request.form
    fields = active_fields()
    values: dict[str, Any] = {key: (form.get(key) or "")[:2000] for key in EDITED}
    typed: dict[str, Any] = {key: values[key] for key in EDITED if key != "email"}
    kept: dict[str, Any] = {}
    for key, field in fields.items():
        name = f"custom.{key}"
        raw: Any = form.getlist(name) if field.type == "multi_choice" else form.get(name, "")
        values[name] = raw
        typed[key] = raw
        current = (contact.custom or {}).get(key) if contact is not None else None
        if contact is not None and raw == shown(current, field):
            kept[key] = current
    values["tags"] = (form.get("tags") or "")[:5000]
    tags = [t for t in values["tags"].replace(";", ",").split(",")]
    owner = form.get("owner_id") or ""
    values["owner_id"] = owner
    known = _known_lists(contact.id if contact else None)
    wanted = {slug: form.get(f"list.{slug}", status) for slug, status in known.items()}
    new_list = (form.get("new_list") or "").strip()
    values["new_list"] = new_list
    if new_list:
        wanted[new_list] = "subscribed"
    values["lists"] = wanted
    agreed = form.get("consent_agreed") == "yes"
    values["consent_agreed"] = agreed
    values["consent_text"] = (form.get("consent_text") or "")[:500]
    edit = editing.Edit(email=values["email"], values=typed, tags=tags, lists=wanted,
                        owner_id=int(owner) if owner.isdigit() else None,
                        consent_text=values["consent_text"] if agreed else None, kept=kept)
    return edit, values


def _page(contact: Contact | None, values: dict[str, Any], errors: dict[str, str] | None = None,
          existing: Contact | None = None, status: int = 200) -> Any:
    owners = _owners()
    active = {u.id for u in db.session.scalars(select(User).where(User.active.is_(True)))}
    return render_template(
        "admin/contact_edit.html", contact=contact, values=values, errors=errors or {},
        existing=existing, fields=active_fields(), stages=LIFECYCLE_STAGES,
        countries=COUNTRIES, owners=[(i, label) for i, label in owners.items()
                                     if i in active or str(i) == values.get("owner_id")],
        companies=list(db.session.scalars(select(Company.name).order_by(Company.name)
                                          .limit(1000))),
        lists=_known_lists(contact.id if contact else None)), status


def _check_new_list(slug: str) -> None:
    """A list typed in "Subscribe to a new list": one that exists keeps its slug."""
    if slug and slug not in _known_lists(None):
        try:
            lists.check_slug(slug)
        except ContactError as exc:
            raise editing.Invalid({"new_list": str(exc)}) from None


def _editable(contact_id: int) -> Contact:
    contact = db.get_or_404(Contact, contact_id)
    if contact.status in ("merged", "erased"):
        abort(404)
    return contact


@bp.get("/contacts/new")
@require_role("editor")
def contacts_new() -> Any:
    return _page(None, {"lifecycle_stage": "subscriber", "lists": {}})


@bp.post("/contacts/new")
@require_role("editor")
def contacts_create() -> Any:
    edit, values = _posted(None)
    try:
        _check_new_list(values["new_list"])
        contact = editing.create(edit, current_user, _owners())
    except editing.Invalid as exc:
        return _page(None, values, exc.errors, exc.existing, 400)
    except ContactError as exc:
        return _page(None, values, {exc.field or "email": str(exc)}, None, 400)
    flash(f"{contact.email} was added.")
    return redirect(url_for("admin.contacts_show", contact_id=contact.id))


@bp.get("/contacts/<int:contact_id>/edit")
@require_role("editor")
def contacts_edit(contact_id: int) -> Any:
    contact = _editable(contact_id)
    return _page(contact, {**_values_of(contact), "lists": _known_lists(contact.id)})


@bp.post("/contacts/<int:contact_id>/edit")
@require_role("editor")
def contacts_update(contact_id: int) -> Any:
    contact = _editable(contact_id)
    edit, values = _posted(contact)
    try:
        _check_new_list(values["new_list"])
        changes = editing.update(contact, edit, current_user, _owners())
    except editing.Invalid as exc:
        return _page(contact, values, exc.errors, exc.existing, 400)
    except ContactError as exc:
        return _page(contact, values, {exc.field or "email": str(exc)}, None, 400)
    flash("Saved." if changes else "Nothing changed.")
    return redirect(url_for("admin.contacts_show", contact_id=contact.id))


# --- notes ---------------------------------------------------------------------------------

@bp.post("/contacts/<int:contact_id>/notes")
@require_role("editor")
def contacts_notes_add(contact_id: int) -> Any:
    contact = _editable(contact_id)
    try:
        with write():
            note = notes.add(contact, request.form.get("body", ""), current_user)
            audit.record(current_user, "contact.note.add", f"contact {contact.id}",
                         {"note": note.id, "new": note.body})
    except ContactError as exc:
        flash(f"Not saved: {exc}", "error")
    return redirect(url_for("admin.contacts_show", contact_id=contact.id) + "#notes")


def _own_note(note_id: int) -> ContactNote:
    note = db.get_or_404(ContactNote, note_id)
    if not notes.may_change(note, current_user):
        abort(403)
    return note


@bp.post("/contacts/notes/<int:note_id>/edit")
@require_role("editor")
def contacts_notes_edit(note_id: int) -> Any:
    note = _own_note(note_id)
    try:
        body = notes.clean(request.form.get("body", ""))
        if body != note.body:
            with write():
                note = db.session.get(ContactNote, note.id)
                before = notes.edit(note, body)
                audit.record(current_user, "contact.note.edit", f"contact {note.contact_id}",
                             {"note": note.id, "old": before, "new": note.body})
    except ContactError as exc:
        flash(f"Not saved: {exc}", "error")
    return redirect(url_for("admin.contacts_show", contact_id=note.contact_id) + "#notes")


@bp.post("/contacts/notes/<int:note_id>/delete")
@require_role("editor")
def contacts_notes_delete(note_id: int) -> Any:
    note = _own_note(note_id)
    contact_id = note.contact_id
    with write():
        audit.record(current_user, "contact.note.delete", f"contact {contact_id}",
                     {"note": note.id, "old": note.body})
        db.session.delete(db.session.get(ContactNote, note.id))
    flash("The note was deleted.")
    return redirect(url_for("admin.contacts_show", contact_id=contact_id) + "#notes")
