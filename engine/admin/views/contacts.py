"""Contacts: a list that stays fast at a million rows, the 360° contact page, merge with undo,
GDPR export and erase.

Searching, filtering and paging are the contacts query service's (`engine.contacts.query`);
plugins add filters, sorts and columns to the list and panels to the contact page
(`register_contact_list_filters`, `register_contact_list_sorts`,
`register_contact_list_columns`, `tpl_admin_contact`).
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from flask import (
    Response,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from engine import audit, plugins
from engine.admin.blueprint import bp, row_id
from engine.admin.columns import ContactColumn
from engine.auth import require_role
from engine.auth.models import User
from engine.contacts import duplicates, gdpr, notes, query, timeline, touches
from engine.contacts import merge as merging
from engine.contacts.fields import labelled
from engine.contacts.models import LIFECYCLE_STAGES, Contact, ContactMerge, Tag
from engine.db import db
from engine.events.types import NAME

MAX_TYPE_FILTERS = 60


@bp.get("/contacts")
@require_role("viewer")
def contacts_list() -> Any:
    asked = query.ContactQuery.from_args(request.args)
    after = (request.args.get("after") or "")[:320]
    contacts, cursor, sort = query.sorted_page(query.filtered(asked), asked.sort, after)
    if sort != asked.sort:  # a plugin's sort failed: say what is shown, page on from it
        flash("That sort is not available just now; the newest contacts are shown first.",
              "error")
        asked = dataclasses.replace(asked, sort=sort)
    tags = list(db.session.scalars(select(Tag.name).order_by(Tag.name).limit(500)))
    return render_template("admin/contacts_list.html", contacts=contacts, cursor=cursor,
                           asked=asked, filters=asked.params(), stages=LIFECYCLE_STAGES,
                           statuses=query.STATUSES, first_page=not after, tags=tags,
                           plugin_filters=_plugin_filter_menus(), sorts=_sort_menu(),
                           columns=_plugin_columns(contacts), per_page=query.PER_PAGE)


CORE_SORTS = [("newest", "Newest first"), ("oldest", "Oldest first"), ("email", "Email A–Z")]


def _sort_menu() -> list[tuple[str, str]]:
    """`[(value, label)]` of the sort menu: the core's sorts, then the plugins'."""
    return CORE_SORTS + [(name, str(item.label))
                         for name, (_, item) in query.plugin_sorts().items()]


def _plugin_filter_menus() -> list[tuple[query.ContactFilter, list[tuple[str, str]]]]:
    """Each plugin filter with its choices; one whose choices fail is left out (reported)."""
    menus = []
    for slug, item in query.plugin_filters().values():
        choices = query.choices_of(slug, item)
        if choices is not None:
            menus.append((item, choices))
    return menus


def _plugin_columns(contacts: list[Contact]) -> list[tuple[str, dict[int, str]]]:
    """`[(label, {contact id: text})]` of the plugins' columns for this page of contacts; a
    column whose values fail shows empty cells (and is reported to the owner)."""
    manager, columns = plugins.current(), []
    for slug, column in manager.collect("register_contact_list_columns"):
        if not isinstance(column, ContactColumn):
            continue
        try:
            values = column.values(contacts) if contacts else {}
        except Exception as exc:  # the engine's boundary for a plugin's code
            manager.report_error(slug, "register_contact_list_columns", exc)
            values = {}
        columns.append((column.label, values))
    return columns


@bp.get("/contacts/<int:contact_id>")
@require_role("viewer")
def contacts_show(contact_id: int) -> Any:
    from engine.forms.service import submissions_for
    contact = db.get_or_404(Contact, contact_id)
    if contact.status == "merged" and contact.merged_into_id:
        flash("This contact was merged into another one; you see the merged contact.")
        return redirect(url_for("admin.contacts_show", contact_id=contact.merged_into_id))
    return render_template("admin/contact.html", contact=contact, **_timeline(contact),
                           sources=_sources(contact),
                           duplicates=duplicates.suggestions(contact)
                           if contact.status == "active" else [],
                           submissions=submissions_for([contact.id])[-50:],
                           merges=merging.merges_of(contact.id),
                           owner=db.session.get(User, contact.owner_id)
                           if contact.owner_id else None,
                           notes=notes.of(gdpr.merged_ids(contact.id)),
                           custom=labelled(contact.custom))


@bp.get("/contacts/<int:contact_id>/timeline")
@require_role("viewer")
def contacts_timeline(contact_id: int) -> Any:
    """The timeline alone, for the filter's and pager's in-page updates (htmx)."""
    contact = db.get_or_404(Contact, contact_id)
    found = _timeline(contact)
    response = make_response(render_template("admin/_contact_timeline.html", contact=contact,
                                             **found))
    response.headers["HX-Push-Url"] = url_for(  # the address that shows this again, whole
        "admin.contacts_show", contact_id=contact.id, type=found["chosen_types"],
        before=request.args.get("before", type=row_id))
    return response


def _timeline(contact: Contact) -> dict[str, Any]:
    """The timeline page asked for: `?type=` (repeated) filters, `?before=` pages on."""
    before = request.args.get("before", type=row_id)
    asked = [t for t in request.args.getlist("type")[:MAX_TYPE_FILTERS] if NAME.fullmatch(t)]
    found = timeline.page(contact.id, types=asked, before=before)
    return {"timeline": found.groups, "older": found.older, "paged": before is not None,
            "event_types": timeline.types_of(contact.id), "chosen_types": asked}


def _sources(contact: Contact) -> list[tuple[str, dict[str, str]]]:
    """Original and latest source, as the profile shows them."""
    return [(title, shown) for title, touch in (("Original source", contact.first_touch),
                                                ("Latest source", contact.last_touch))
            if (shown := touches.shown(touch or {}))]


@bp.post("/contacts/<int:contact_id>/merge")
@require_role("editor")
def contacts_merge(contact_id: int) -> Any:
    winner = db.get_or_404(Contact, contact_id)
    other = (request.form.get("other") or "").strip()[:320]
    try:
        loser = db.session.get(Contact, row_id(other))
    except ValueError:  # not an id: an email address
        loser = db.session.scalar(select(Contact).where(Contact.email == other.lower()))
    if loser is None:
        flash(f"No contact {other!r} to merge.", "error")
        return redirect(url_for("admin.contacts_show", contact_id=winner.id))
    try:
        record = merging.merge(winner.id, loser.id, current_user.email)
    except merging.MergeError as exc:
        flash(f"Not merged: {exc}", "error")
        return redirect(url_for("admin.contacts_show", contact_id=winner.id))
    audit.record(current_user, "contact.merge", f"contact {winner.id}",
                 {"merged": loser.id, "merge": record.id})
    flash(f"{loser.email} was merged into this contact. You can undo it below.")
    return redirect(url_for("admin.contacts_show", contact_id=winner.id))


@bp.post("/contacts/merges/<int:merge_id>/undo")
@require_role("editor")
def contacts_undo_merge(merge_id: int) -> Any:
    known = db.session.get(ContactMerge, merge_id)
    if known is None:
        abort(404)
    try:
        record = merging.undo(merge_id, current_user.email)
    except merging.MergeError as exc:
        flash(f"Not undone: {exc}", "error")
        return redirect(url_for("admin.contacts_show", contact_id=known.winner_id))
    audit.record(current_user, "contact.unmerge", f"contact {record.winner_id}",
                 {"restored": record.loser_id, "merge": record.id})
    flash("The merge was undone: both contacts are back as they were.")
    return redirect(url_for("admin.contacts_show", contact_id=record.winner_id))


@bp.post("/contacts/<int:contact_id>/export")
@require_role("editor")
def contacts_export(contact_id: int) -> Any:
    """Everything stored about one person (GDPR access and portability), as JSON."""
    contact = db.get_or_404(Contact, contact_id)
    data = gdpr.export_contact(contact.id)
    audit.record(current_user, "contact.export", f"contact {contact.id}")
    return Response(json.dumps(data, indent=2, ensure_ascii=False, default=str),
                    mimetype="application/json",
                    headers={"Content-Disposition":
                             f'attachment; filename="contact-{contact.id}.json"'})


@bp.post("/contacts/<int:contact_id>/erase")
@require_role("editor")
def contacts_erase(contact_id: int) -> Any:
    contact = db.get_or_404(Contact, contact_id)
    if request.form.get("confirm") != "erase":
        flash("Type “erase” to confirm.", "error")
        return redirect(url_for("admin.contacts_show", contact_id=contact.id))
    erased = gdpr.erase_contact(contact.id, current_user.email)  # merged: the person it joined
    audit.record(current_user, "contact.erase", f"contact {erased}")
    flash("The contact's personal data was erased.")
    return redirect(url_for("admin.contacts_show", contact_id=erased))
