"""Forms: a builder (fields, validation, success action, progressive profiling, notification),
submissions, and CSV export. Definitions are checked and stored by `engine.forms.service`.
"""
from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from typing import Any

from flask import (
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from engine import audit
from engine.admin.blueprint import bp, row_id
from engine.auth import require_role
from engine.contacts.transfer import BOM, spreadsheet_safe
from engine.db import db
from engine.forms import service
from engine.forms.definitions import (
    FIELD_TYPES,
    SUCCESS_ACTIONS,
    DefinitionError,
    FormDef,
    parse,
)
from engine.forms.models import Form, Submission

MAX_FIELDS = 60
PER_PAGE = 50
CHOICE_TYPES = ("select", "radio", "checkboxes")
# What the editor has an input for; anything else a definition holds (a field's autocomplete,
# keys a YAML file adds) travels through the page in a hidden `kept` input and is saved as it was.
FIELD_KEYS = {"name", "type", "label", "required", "profiling", "help", "placeholder", "choices",
              "max_length", "default", "min", "max"}
FORM_KEYS = {"slug", "title", "description", "submit_label", "fields", "success", "notify",
             "lists", "tags", "double_opt_in", "profiling"}
INTEGER = re.compile(r"^[+-]?[0-9]+$")


def _form_or_404(slug: str) -> Form:
    row = db.session.scalar(select(Form).where(Form.slug == slug[:100]))
    if row is None:
        abort(404)
    return row


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.replace("\n", ",").split(",") if part.strip()]


def _choices(raw: str) -> list[Any]:
    """One choice per line: `value | label`, or just the text (value and label at once), which
    is kept as one string, the way definition files write it."""
    out: list[Any] = []
    for line in raw.splitlines():
        if line.strip():
            value, bar, label = line.partition("|")
            out.append({"value": value.strip(), "label": label.strip() or value.strip()} if bar
                       else line.strip())
    return out


def _number(text: str) -> Any:
    """A min or max as typed: 0 stays an integer; what is not a number is left for `parse` to
    refuse (and for the editor to show again)."""
    if not text:
        return None
    try:
        return int(text) if INTEGER.match(text) else float(text)
    except ValueError:
        return text


def _text(raw: str | None) -> str:
    """A textarea's text with the browser's CRLF line breaks as the stored LF."""
    return (raw or "").replace("\r\n", "\n").strip()


def kept(data: dict[str, Any], edited: set[str]) -> str:
    """The properties the editor has no input for, as JSON for a hidden input ('' for none)."""
    other = {key: value for key, value in data.items() if key not in edited}
    return json.dumps(other, ensure_ascii=False) if other else ""


def _unkept(raw: str | None, edited: set[str]) -> dict[str, Any]:
    try:
        data = json.loads(raw or "{}")
    except ValueError:
        return {}
    return {k: v for k, v in data.items() if k not in edited} if isinstance(data, dict) else {}


def _definition_from_request(slug: str) -> dict[str, Any]:
    form = request.form
    fields = []
    count = min(form.get("field_count", 0, type=int), MAX_FIELDS)
    rows = []
    for i in range(count + 1):
        get = lambda key, i=i: (form.get(f"f-{i}-{key}") or "").strip()  # noqa: E731
        if not get("name") or get("remove"):
            continue
        field: dict[str, Any] = {**_unkept(form.get(f"f-{i}-kept"), FIELD_KEYS),
                                 "name": get("name")[:60], "type": get("type") or "text",
                                 "label": get("label")[:300], "required": bool(get("required")),
                                 "profiling": bool(get("profiling"))}
        for key in ("help", "placeholder", "default"):
            if get(key):
                field[key] = get(key)[:500]
        for key in ("min", "max"):
            if get(key):
                field[key] = _number(get(key)[:40])
        if field["type"] in CHOICE_TYPES:
            field["choices"] = _choices(form.get(f"f-{i}-choices") or "")
        if get("max_length").isdigit():
            field["max_length"] = int(get("max_length"))
        rows.append((form.get(f"f-{i}-order", i, type=int), i, field))
    fields = [field for _, _, field in sorted(rows, key=lambda r: (r[0], r[1]))]
    success: dict[str, Any] = {"action": form.get("success_action") or "message",
                               "message": _text(form.get("success_message"))[:2000]
                               or "Thank you!"}
    if success["action"] == "redirect":
        success["redirect"] = (form.get("success_redirect") or "").strip()
    if success["action"] == "asset":
        success["asset"] = (form.get("success_asset") or "").strip()
    return {
        **_unkept(form.get("kept"), FORM_KEYS),
        "slug": slug, "title": (form.get("title") or "").strip()[:200],
        "description": _text(form.get("description"))[:2000],
        "submit_label": (form.get("submit_label") or "Submit").strip()[:100],
        "fields": fields, "success": success, "notify": _split(form.get("notify") or ""),
        "lists": _split(form.get("lists") or ""), "tags": _split(form.get("tags") or ""),
        "double_opt_in": bool(form.get("double_opt_in")),
        "profiling": {"max_fields": max(0, min(form.get("max_profiling_fields", 2, type=int), 20))},
    }


def _editor(definition: dict[str, Any], row: Form | None, error: str | None = None,
            status: int = 200) -> Any:
    return render_template("admin/form_edit.html", d=definition, row=row, error=error,
                           field_types=FIELD_TYPES, success_actions=SUCCESS_ACTIONS,
                           choice_types=CHOICE_TYPES, kept=kept, field_keys=FIELD_KEYS,
                           form_keys=FORM_KEYS), status


@bp.get("/forms")
@require_role("viewer")
def forms_list() -> Any:
    from engine.admin.stats import cached_form_figures
    figures = {f.slug: f for f in cached_form_figures()}
    return render_template("admin/forms_list.html", forms=service.all_forms(), figures=figures)


@bp.route("/forms/new", methods=["GET", "POST"])
@require_role("editor")
def forms_new() -> Any:
    blank = {"slug": "", "title": "", "fields": [{"name": "email", "type": "email",
                                                  "label": "Email", "required": True}],
             "success": {"action": "message", "message": "Thank you!"}, "submit_label": "Submit"}
    if request.method == "GET":
        return _editor(blank, None)
    slug = (request.form.get("slug") or "").strip().lower()
    definition = _definition_from_request(slug)
    if db.session.scalar(select(Form.id).where(Form.slug == slug)):
        return _editor(definition, None, f"A form named {slug!r} already exists.", 400)
    return _save(definition, None)


@bp.route("/forms/<slug>", methods=["GET", "POST"])
@require_role("editor")
def forms_edit(slug: str) -> Any:
    row = _form_or_404(slug)
    if request.method == "GET":
        return _editor(row.definition, row)
    return _save(_definition_from_request(row.slug), row)


def _save(definition: dict[str, Any], row: Form | None) -> Any:
    """Store the form, unless it means what the stored one means: a form saved as shown stays
    as it is (a file's form stays the file's), and the editor says so."""
    try:
        if row is not None and parse(definition) == _parsed(row.definition):
            flash(f"Form “{row.title}” unchanged.")
            return redirect(url_for("admin.forms_edit", slug=row.slug))
        saved = service.save(definition, source="admin")
    except (DefinitionError, KeyError, TypeError, ValueError) as exc:
        return _editor(definition, row, str(exc), 400)
    audit.record(current_user, "form.create" if row is None else "form.update", saved.slug)
    flash(f"Form “{saved.title}” saved. Put it on a page with [form {saved.slug}].")
    return redirect(url_for("admin.forms_edit", slug=saved.slug))


def _parsed(stored: dict[str, Any]) -> FormDef | None:
    try:
        return parse(stored)
    except (DefinitionError, KeyError, TypeError, ValueError):
        return None


@bp.get("/forms/<slug>/submissions")
@require_role("viewer")
def forms_submissions(slug: str) -> Any:
    row = _form_or_404(slug)
    before = request.args.get("before", type=row_id)
    query = select(Submission).where(Submission.form_slug == row.slug)
    if before:
        query = query.where(Submission.id < before)
    submissions = list(db.session.scalars(query.order_by(Submission.id.desc()).limit(PER_PAGE + 1)))
    more = len(submissions) > PER_PAGE
    submissions = submissions[:PER_PAGE]
    columns = [f["name"] for f in row.definition.get("fields", [])]
    return render_template("admin/form_submissions.html", row=row, submissions=submissions,
                           columns=columns, next_before=submissions[-1].id if more else None)


def _cell(value: Any) -> str:
    """A CSV cell that spreadsheets will not run as a formula (CSV injection)."""
    if isinstance(value, list):
        return spreadsheet_safe(", ".join(map(str, value)))
    return spreadsheet_safe("" if value is None else str(value))


@bp.post("/forms/<slug>/submissions.csv")  # a POST: it writes to the audit log
@require_role("editor")
def forms_export(slug: str) -> Any:
    row = _form_or_404(slug)
    columns = [f["name"] for f in row.definition.get("fields", [])]
    audit.record(current_user, "form.export", row.slug)
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def lines() -> Iterator[str]:
        with app.app_context():  # its own session, alive while the file streams
            yield from _csv_lines(row.slug, columns)

    return Response(lines(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{row.slug}-submissions.csv"'})


def _csv_lines(slug: str, columns: list[str]) -> Iterator[str]:
    """The CSV in chunks of a thousand rows, read in id order (keyset), never all at once;
    with a byte-order mark first, for Excel (see `engine.contacts.transfer.BOM`)."""
    buffer = io.StringIO()
    buffer.write(BOM)
    writer = csv.writer(buffer)
    writer.writerow(["id", "submitted_at", "contact_id", *columns, "page_url", "referrer"])
    last = 0
    while True:
        batch = list(db.session.scalars(select(Submission).where(
            Submission.form_slug == slug, Submission.id > last)
            .order_by(Submission.id).limit(1000)))
        if not batch:
            break
        for s in batch:
            values = s.raw or {}
            writer.writerow([s.id, s.created_at.isoformat(), s.contact_id or "",
                             *(_cell(values.get(c)) for c in columns),
                             _cell(s.page_url), _cell(s.referrer)])
        last = batch[-1].id
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()
