"""Contacts: a list that stays fast at a million rows, the 360° contact page, merge with undo,
GDPR export and erase.

The list pages with keyset pagination on an indexed key (id, or the unique email) instead of
OFFSET, so page 20,000 costs what page 1 does; it shows no exact total, since counting a
million filtered rows is what would make it slow.
"""
from __future__ import annotations

import json
from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import and_, func, or_, select

from engine import audit
from engine.admin.blueprint import bp, row_id
from engine.auth import require_role
from engine.contacts import activity, gdpr
from engine.contacts import merge as merging
from engine.contacts.models import (
    LIFECYCLE_STAGES,
    Company,
    Contact,
    ContactMerge,
    ContactTag,
    Tag,
)
from engine.db import db

PER_PAGE = 50
TIMELINE_PER_PAGE = 100
SORTS = ("newest", "oldest", "email")
STATUSES = ("active", "bounced", "merged", "erased", "all")


def _contact_or_404(contact_id: int) -> Contact:
    contact = db.session.get(Contact, contact_id)
    if contact is None:
        abort(404)
    return contact


def _prefix(column: Any, prefix: str) -> Any:
    """`column` starts with `prefix` (both lower-case), in a form an index can serve."""
    if db.engine.dialect.name == "postgresql":
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.like(f"{escaped}%", escape="\\")  # text_pattern_ops index
    return and_(column >= prefix, column < prefix + "\U0010ffff")  # SQLite compares bytes


def name_or_email_search(low: str) -> Any:
    """Prefix search: an email, a first or last name, or "first last" (a prefix of each).

    Only prefixes, because "contains" cannot use an index and would scan every contact.
    Emails are stored lower-case and ranged on their unique index; names through the
    lower(name) indexes of the contacts-at-scale migration (abd2df493efc).
    """
    first, last = func.lower(Contact.first_name), func.lower(Contact.last_name)
    email = and_(Contact.email >= low, Contact.email < low + "\U0010ffff")
    if "@" in low or "." in low:
        return email
    words = low.split()
    if len(words) > 1:
        return and_(_prefix(first, words[0]), _prefix(last, " ".join(words[1:])))
    return or_(email, _prefix(first, low), _prefix(last, low))


def _filtered(q: str, stage: str, tag: str, company: str, status: str) -> Any:
    query = select(Contact)
    if status != "all":
        query = query.where(Contact.status == (status or "active"))
    if q:
        query = query.where(name_or_email_search(q.lower()))
    if stage in LIFECYCLE_STAGES:
        query = query.where(Contact.lifecycle_stage == stage)
    if tag:
        tag_id = db.session.scalar(select(Tag.id).where(Tag.name == tag))
        query = query.where(Contact.id.in_(select(ContactTag.contact_id).where(
            ContactTag.tag_id == (tag_id or -1))))
    if company:
        company_id = db.session.scalar(select(Company.id).where(Company.name == company))
        query = query.where(Contact.company_id == (company_id or -1))
    return query


def _page(query: Any, sort: str, after: str) -> tuple[list[Contact], str | None]:
    """One page after the cursor `after` (the last row's sort key), and the next cursor."""
    if sort == "email":
        if after:
            query = query.where(Contact.email > after)
        query = query.order_by(Contact.email)
    elif sort == "oldest":
        if (cursor := _id_or_none(after)) is not None:
            query = query.where(Contact.id > cursor)
        query = query.order_by(Contact.id)
    else:
        if (cursor := _id_or_none(after)) is not None:
            query = query.where(Contact.id < cursor)
        query = query.order_by(Contact.id.desc())
    rows = list(db.session.scalars(query.limit(PER_PAGE + 1)))
    more = len(rows) > PER_PAGE
    rows = rows[:PER_PAGE]
    cursor = None
    if more:
        cursor = rows[-1].email if sort == "email" else str(rows[-1].id)
    return rows, cursor


@bp.get("/contacts")
@require_role("viewer")
def contacts_list() -> Any:
    args = request.args
    q = (args.get("q") or "").strip()[:320]
    stage = args.get("stage") if args.get("stage") in LIFECYCLE_STAGES else ""
    tag = (args.get("tag") or "").strip()[:100]
    company = (args.get("company") or "").strip()[:200]
    status = args.get("status") if args.get("status") in STATUSES else "active"
    sort = args.get("sort") if args.get("sort") in SORTS else "newest"
    after = (args.get("after") or "")[:320]
    contacts, cursor = _page(_filtered(q, stage, tag, company, status), sort, after)
    chosen = dict(q=q, stage=stage, tag=tag, company=company,
                  status=status if status != "active" else "", sort=sort)
    filters = {k: v for k, v in chosen.items() if v}
    tags = list(db.session.scalars(select(Tag.name).order_by(Tag.name).limit(500)))
    return render_template("admin/contacts_list.html", contacts=contacts, cursor=cursor,
                           filters=filters, q=q, stage=stage, tag=tag, company=company,
                           status=status, sort=sort, stages=LIFECYCLE_STAGES, first_page=not after,
                           tags=tags)


@bp.get("/contacts/<int:contact_id>")
@require_role("viewer")
def contacts_show(contact_id: int) -> Any:
    from engine.forms.service import submissions_for
    contact = _contact_or_404(contact_id)
    if contact.status == "merged" and contact.merged_into_id:
        flash("This contact was merged into another one; you see the merged contact.")
        return redirect(url_for("admin.contacts_show", contact_id=contact.merged_into_id))
    before = request.args.get("before", type=row_id)
    events = activity.timeline(contact.id, limit=TIMELINE_PER_PAGE + 1, before=before)
    older = events[TIMELINE_PER_PAGE - 1].id if len(events) > TIMELINE_PER_PAGE else None
    return render_template("admin/contact.html", contact=contact,
                           timeline=events[:TIMELINE_PER_PAGE], older=older,
                           paged=before is not None,
                           submissions=submissions_for([contact.id])[-50:],
                           merges=merging.merges_of(contact.id))


def _id_or_none(value: str) -> int | None:
    try:
        return row_id(value)
    except ValueError:  # "²" is a digit to str.isdigit, not to int()
        return None


@bp.post("/contacts/<int:contact_id>/merge")
@require_role("editor")
def contacts_merge(contact_id: int) -> Any:
    winner = _contact_or_404(contact_id)
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
    contact = _contact_or_404(contact_id)
    data = gdpr.export_contact(contact.id)
    audit.record(current_user, "contact.export", f"contact {contact.id}")
    return Response(json.dumps(data, indent=2, ensure_ascii=False, default=str),
                    mimetype="application/json",
                    headers={"Content-Disposition":
                             f'attachment; filename="contact-{contact.id}.json"'})


@bp.post("/contacts/<int:contact_id>/erase")
@require_role("editor")
def contacts_erase(contact_id: int) -> Any:
    contact = _contact_or_404(contact_id)
    if request.form.get("confirm") != "erase":
        flash("Type “erase” to confirm.", "error")
        return redirect(url_for("admin.contacts_show", contact_id=contact.id))
    erased = gdpr.erase_contact(contact.id, current_user.email)  # merged: the person it joined
    audit.record(current_user, "contact.erase", f"contact {erased}")
    flash("The contact's personal data was erased.")
    return redirect(url_for("admin.contacts_show", contact_id=erased))
