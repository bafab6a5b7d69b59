"""The suppression list (`/admin/mail/suppressions`): who gets no mail and why.

Viewers see and search it; editors add an address by hand and import the list of the tool the
site leaves (CSV, with a dry run); owners remove entries: lifting a hard bounce or a complaint
can get the sender blocked, so that asks to confirm first. Every change is in the audit log.

The list can hold hundreds of thousands of rows: pages are keyset-paged on the id (newest
first, `?after=`), search is an address prefix on the unique index, and the export streams.
"""
from __future__ import annotations

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
from sqlalchemy import func, or_, select

from engine import audit
from engine.admin.blueprint import bp, row_id, when_too_large
from engine.auth import require_role
from engine.contacts.service import ContactError, normalise_email
from engine.db import db, utcnow, write
from engine.mail import suppression, suppression_csv
from engine.mail.models import Suppression
from engine.web import body_limit

PER_PAGE = 50
REASON_LABELS = {"unsubscribed": "Unsubscribed", "paused": "Paused",
                 "manual": "Added by hand", "imported": "Do not mail (reason unknown)",
                 "soft_bounce": "Soft bounces",
                 "hard_bounce": "Hard bounce", "complaint": "Complaint"}
RISKY = ("hard_bounce", "complaint", "soft_bounce")  # removing one asks to confirm


def _page_of(q: str, reason: str, after: int | None) -> tuple[list[Suppression], int | None]:
    query = select(Suppression).order_by(Suppression.id.desc()).limit(PER_PAGE + 1)
    if q:
        prefix = suppression.normalise(q)
        matches = [Suppression.email.startswith(prefix, autoescape=True)]
        if "@" in prefix:  # an erased person's entry is found by their full address
            matches.append(Suppression.email == suppression.hashed(prefix))
        query = query.where(or_(*matches))
    if reason:
        query = query.where(Suppression.reason == reason)
    if after:
        query = query.where(Suppression.id < after)
    rows = list(db.session.scalars(query))
    more = len(rows) > PER_PAGE
    rows = rows[:PER_PAGE]
    return rows, rows[-1].id if more else None


def _list_page(status: int = 200, **form: Any) -> Any:
    q = (request.args.get("q") or "").strip()[:320]
    reason = request.args.get("reason", "")
    reason = reason if reason in REASON_LABELS else ""
    after = request.args.get("after", None, type=row_id)
    rows, cursor = _page_of(q, reason, after)
    counts = dict(db.session.execute(select(Suppression.reason, func.count())
                                     .group_by(Suppression.reason)).all())
    return render_template(
        "admin/mail_suppressions.html", rows=rows, cursor=cursor, q=q, reason=reason,
        first_page=not after, counts=counts, labels=REASON_LABELS, per_page=PER_PAGE,
        now=utcnow(), default_reasons=suppression_csv.DEFAULT_REASONS,
        max_mb=suppression_csv.MAX_BYTES // 1024 // 1024, form=form), status


@bp.get("/mail/suppressions")
@require_role("viewer")
def suppressions_list() -> Any:
    return _list_page()


@bp.post("/mail/suppressions")
@require_role("editor")
def suppressions_add() -> Any:
    raw = (request.form.get("email") or "").strip()
    scope = request.form.get("scope", "marketing")
    note = (request.form.get("note") or "").strip()[:500]
    try:
        address = normalise_email(raw)
        if scope not in suppression.SCOPES:
            raise ContactError("Choose what the address must not get.", "scope")
    except ContactError as exc:
        return _list_page(400, email=raw[:320], scope=scope, note=note, error=exc.args[0])
    with write():
        was = suppression.entry(address)
        suppression.suppress(address, "manual", scope=scope, note=note, by=current_user.email)
        audit.record(current_user, "mail.suppression.add", address,
                     {"scope": scope, "note": note, "already": was.reason if was else ""})
    flash(f"{address} is on the suppression list." if was is None else
          f"{address} was on the list already ({REASON_LABELS.get(was.reason, was.reason)}); "
          "it stays, at least as strong as before.")
    return redirect(url_for("admin.suppressions_list"))


@bp.post("/mail/suppressions/<int:entry_id>/remove")
@require_role("owner")
def suppressions_remove(entry_id: int) -> Any:
    row = db.session.get(Suppression, entry_id)
    if row is None:
        abort(404)
    if row.reason in RISKY and request.form.get("confirmed") != "yes":
        return render_template("admin/mail_suppression_remove.html", row=row,
                               label=REASON_LABELS.get(row.reason, row.reason))
    address, reason = row.email, row.reason
    with write() as session:
        session.delete(session.get(Suppression, entry_id))
        audit.record(current_user, "mail.suppression.remove", address,
                     {"reason": reason, "scope": row.scope})
    shown = "An erased person's address" if address.startswith("sha256:") else address
    flash(f"{shown} is off the suppression list: it gets mail again.")
    return redirect(url_for("admin.suppressions_list"))


def _too_large() -> Any:
    return _list_page(413, import_error=f"The file is larger than "
                      f"{suppression_csv.MAX_BYTES // 1024 // 1024} MB: split it and import "
                      "the parts. Nothing was changed.")


@bp.post("/mail/suppressions/import")
@require_role("editor")
@body_limit(suppression_csv.UPLOAD_CONFIG)
@when_too_large(_too_large)
def suppressions_import() -> Any:
    """A dry run (`mode=check`) or the import itself; both read and check the whole file
    first, so a file that cannot be read changes nothing."""
    default = request.form.get("reason", "unsubscribed")
    mode = request.form.get("mode", "check")
    upload = request.files.get("file")
    if default not in suppression_csv.DEFAULT_REASONS or mode not in ("check", "import"):
        abort(400)
    if upload is None or not upload.filename:
        return _list_page(400, import_error="Choose a CSV file to import.")
    name = upload.filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1][:200]
    try:
        plan = suppression_csv.read_file(upload.stream, default)
    except suppression_csv.NotASuppressionList as exc:
        return _list_page(400, import_error=f"{exc} Nothing was changed.")
    added = existing = None
    if mode == "check":
        suppression_csv.count_new(plan)
    else:
        added, existing = suppression_csv.apply(plan, by=current_user.email,
                                                note=f"imported from {name}")
        audit.record(current_user, "mail.suppression.import", name,
                     {"added": added, "already": existing, "bad": len(plan.bad),
                      "reason": default})
    return render_template("admin/mail_suppression_import.html", plan=plan, name=name,
                           mode=mode, added=added, existing=existing, labels=REASON_LABELS,
                           default=default, default_reasons=suppression_csv.DEFAULT_REASONS,
                           bad=plan.bad[:suppression_csv.BAD_ROWS_SHOWN],
                           max_mb=suppression_csv.MAX_BYTES // 1024 // 1024)


@bp.post("/mail/suppressions.csv")  # a POST: it writes to the audit log
@require_role("editor")
def suppressions_export() -> Any:
    audit.record(current_user, "mail.suppression.export", "suppression list")
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def lines() -> Any:
        with app.app_context():  # its own session, alive while the file streams
            yield from suppression_csv.export_lines()

    stamp = utcnow().strftime("%Y-%m-%d")
    return Response(lines(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="suppression-list-{stamp}.csv"'})
