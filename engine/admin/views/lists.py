"""Lists: every list with its counts, a list's members a keyset page at a time, and, for
editors, adding a person, taking one off, and importing a CSV file to a list.

A list is only a slug on subscriptions (`engine.contacts.lists`), so a new list is made by
putting someone on a new slug. An editor vouches for whom they add or import: they join as
`subscribed` at once, and an import records itself as the consent proof of whoever has none.
Nobody who unsubscribed (or withdrew consent) is put back by an editor; taking someone off keeps
their subscription as `unsubscribed`, for the same reason. Every change is in the audit log.
"""
from __future__ import annotations

import csv
import io
from typing import Any

from flask import (
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from engine import audit
from engine.admin.blueprint import bp, row_id, when_too_large
from engine.auth import require_role
from engine.contacts import lists
from engine.contacts.models import Contact
from engine.contacts.store import ContactError
from engine.contacts.transfer import NoEmailColumn, import_csv
from engine.db import db
from engine.forms.service import lists_named
from engine.web import body_limit

FILTERS = {"": "Everyone", "subscribed": "Subscribed", "pending": "Waiting to confirm",
           "unsubscribed": "Unsubscribed"}
ERRORS_SHOWN = 50


def _all_lists() -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
    """Counts of every list, those only forms name included (at zero), and the forms of each."""
    counts, forms = lists.counts(), lists_named()
    for slug in forms:
        counts.setdefault(slug, dict.fromkeys(lists.STATUSES, 0))
    return dict(sorted(counts.items())), forms


def _usable(slug: str) -> str:
    """A list to add or import to: one that exists keeps its slug, a new one needs a good one."""
    if len(slug) <= 100 and (lists.counts(slug) or slug in lists_named()):
        return slug
    return lists.check_slug(slug)


def _index_page(status: int = 200, **form: Any) -> Any:
    counts, forms = _all_lists()
    return render_template("admin/lists_list.html", counts=counts, forms=forms,
                           form=form), status


@bp.get("/lists")
@require_role("viewer")
def lists_list() -> Any:
    return _index_page()


@bp.get("/lists/new")
@require_role("editor")
def lists_new() -> Any:
    """Where a new list starts: its (empty) page, once the slug is one a list may have."""
    slug = (request.args.get("slug") or "").strip()
    try:
        _usable(slug)
    except ContactError as exc:
        return _index_page(400, slug=slug[:100], error=str(exc))
    return redirect(url_for("admin.lists_show", slug=slug))


def _list_page(slug: str, status: int = 200, **form: Any) -> Any:
    counts, forms = lists.counts(slug).get(slug), lists_named().get(slug, [])
    if counts is None and not forms and not lists.SLUG.match(slug):
        abort(404)
    shown = request.args.get("status", "")
    shown = shown if shown in FILTERS else ""
    after = request.args.get("after", None, type=row_id)
    members = lists.members(slug, shown, after, lists.PER_PAGE + 1)
    more = len(members) > lists.PER_PAGE
    members = members[:lists.PER_PAGE]
    return render_template(
        "admin/list.html", slug=slug, counts=counts or dict.fromkeys(lists.STATUSES, 0),
        known=counts is not None or bool(forms), forms=forms, members=members, shown=shown,
        filters=FILTERS, next_after=members[-1][0].id if more else None, paged=bool(after),
        per_page=lists.PER_PAGE, max_mb=lists.UPLOAD_BYTES // 1024 // 1024,
        form=form), status


@bp.get("/lists/<slug>")
@require_role("viewer")
def lists_show(slug: str) -> Any:
    return _list_page(slug)


@bp.post("/lists/<slug>/add")
@require_role("editor")
def lists_add(slug: str) -> Any:
    raw = (request.form.get("email") or "").strip()
    try:
        added = lists.add(raw, _usable(slug), by=current_user.email)
    except ContactError as exc:
        return _list_page(slug, 400, email=raw[:320], add_error=str(exc))
    if not added.joined:
        flash(f"{added.email} was subscribed to this list already.")
        return redirect(url_for("admin.lists_show", slug=slug))
    audit.record(current_user, "list.add", slug,
                 {"contact": added.contact_id, "created": added.created})
    flash(f"{added.email} is subscribed to this list"
          f"{' (a new contact)' if added.created else ''}.")
    return redirect(url_for("admin.lists_show", slug=slug))


@bp.post("/lists/<slug>/remove")
@require_role("editor")
def lists_remove(slug: str) -> Any:
    try:
        contact = db.session.get(Contact, row_id(request.form.get("contact_id") or ""))
    except ValueError:
        contact = None
    if contact is None:
        abort(400, "No such contact.")
    if not lists.remove(contact.id, slug):
        flash(f"{contact.email} was not on this list; nothing changed.", "error")
        return redirect(url_for("admin.lists_show", slug=slug))
    audit.record(current_user, "list.remove", slug, {"contact": contact.id})
    flash(f"{contact.email} is off this list (kept as unsubscribed: only they can join again).")
    return redirect(url_for("admin.lists_show", slug=slug))


def _too_large() -> Any:
    slug = (request.view_args or {}).get("slug", "")
    return _list_page(slug, 413, import_error=f"The file is larger than "
                      f"{lists.UPLOAD_BYTES // 1024 // 1024} MB: split it and import the parts. "
                      "Nothing was changed.")


@bp.post("/lists/<slug>/import")
@require_role("editor")
@body_limit(lists.UPLOAD_CONFIG)
@when_too_large(_too_large)
def lists_import(slug: str) -> Any:
    """A dry run (`mode=check`) or the import itself. Either reads and checks the whole file
    before writing anything, so a file that cannot be read changes nothing."""
    mode = request.form.get("mode", "check")
    fill_only = request.form.get("fill_only") == "on"
    upload = request.files.get("file")
    if mode not in ("check", "import"):
        abort(400)
    if upload is None or not upload.filename:
        return _list_page(slug, 400, import_error="Choose a CSV file to import.")
    name = upload.filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1][:100]
    try:
        plan = lists.import_plan(name, [_usable(slug)], by=f"{current_user.email} in the admin")
        text = upload.read().decode("utf-8-sig")
        report = import_csv(io.StringIO(text, newline=""), dry_run=mode == "check",
                            overwrite=not fill_only, to_lists=plan)
    except UnicodeDecodeError:
        return _list_page(slug, 400, import_error="The file is not UTF-8 text: save it from your "
                          "spreadsheet as “CSV UTF-8”. Nothing was changed.")
    except NoEmailColumn:
        return _list_page(slug, 400, import_error="The file has no email column: its first line "
                          "must name one (“Email”, “E-mail”, “Email Address”…). Nothing was "
                          "changed.")
    except (ContactError, csv.Error) as exc:
        return _list_page(slug, 400, import_error=f"{str(exc).rstrip('.')}. Nothing was changed.")
    # The import lets go of every object it loaded (a chunk at a time, to stay small), the
    # signed-in user's included: taken back, for the audit log and the page.
    db.session.add(current_user._get_current_object())  # type: ignore[attr-defined]
    outcome = report.lists.get(slug, lists.ListOutcome())
    if mode == "import":
        audit.record(current_user, "list.import", slug,
                     {"file": name, "rows": report.rows, "created": report.created,
                      "joined": outcome.joined, "skipped": len(outcome.refused),
                      "rejected": len(report.errors)})
    return render_template("admin/list_import.html", slug=slug, name=name, mode=mode,
                           report=report, outcome=outcome, fill_only=fill_only,
                           errors=report.errors[:ERRORS_SHOWN],
                           refused=outcome.refused[:ERRORS_SHOWN])
