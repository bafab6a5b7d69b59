"""Enrolling by hand (one address, a segment, a CSV file) and trying a workflow on a contact
(a test run whose emails go to the tester, or a dry run that only says what would happen)."""
from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from engine import audit
from engine.auth import require_role
from engine.contacts.models import Contact
from engine.contacts.service import normalise_email
from engine.db import db, write
from engine.segments import service as segments
from plugins.workflows import admin_words, manual, service, testing
from plugins.workflows.admin_builder import workflow_or_404
from plugins.workflows.definition import WorkflowError
from plugins.workflows.models import Enrolment, Workflow

CSV_BYTES = 512 * 1024  # a file of addresses; a bigger list is a segment's job
UNKNOWN_SHOWN = 20


def _said(result: manual.Enrolled) -> str:
    parts = [f"{result.enrolled} enrolled", f"{result.skipped} skipped (already in, or not "
             "allowed again by the rules)" if result.skipped else ""]
    if result.unknown:
        shown = ", ".join(result.unknown[:UNKNOWN_SHOWN])
        more = len(result.unknown) - UNKNOWN_SHOWN
        parts.append(f"{len(result.unknown)} unknown: {shown}" + (f" and {more} more"
                                                                   if more > 0 else ""))
    return "; ".join(p for p in parts if p) + "."


@require_role("editor")
def enrol(workflow_id: int) -> Any:
    workflow = workflow_or_404(workflow_id)
    if request.method == "GET":
        return render_template("workflows/enrol.html", workflow=workflow,
                               segments=[(s.id, s.name) for s in segments.all_segments()],
                               limit=CSV_BYTES)
    how = request.form.get("how", "")
    back = redirect(url_for("workflows_admin.enrol", workflow_id=workflow.id))
    try:
        if how == "email":
            result = manual.enrol_email(workflow, request.form.get("email", ""),
                                        current_user.email)
            flash(_said(result), "error" if result.unknown else "message")
            target = request.form.get("email", "")[:320]
        elif how == "segment":
            count = manual.queue_segment(workflow, request.form.get("segment_id", 0, type=int),
                                         current_user.email)
            flash(f"The segment's {count} contact(s) are being enrolled.")
            target = f"segment {request.form.get('segment_id', '')}"
        elif how == "csv":
            upload = request.files.get("file")
            data = upload.read(CSV_BYTES + 1) if upload else b""
            if not data:
                raise WorkflowError("Choose a CSV file of addresses.")
            if len(data) > CSV_BYTES:
                raise WorkflowError(f"The file is over {CSV_BYTES // 1024} KB: enrol a segment "
                                    "instead.")
            result = manual.enrol_csv(workflow, data, current_user.email)
            flash(_said(result))
            target = f"file {(upload.filename or '')[:100]}"
        else:
            raise WorkflowError("Choose how to enrol.")
    except WorkflowError as exc:
        flash(f"Nobody enrolled: {exc}", "error")
        return back
    with write():
        audit.record(current_user, "workflows.enrol", workflow.name, {"how": how,
                                                                       "who": target})
    return back


def _contact_id(text: str) -> int | None:
    text = text.strip()
    if text.isdecimal():
        return db.session.scalar(select(Contact.id).where(Contact.id == int(text)))
    try:
        address = normalise_email(text)
    except ValueError:
        return None
    return db.session.scalar(select(Contact.id).where(Contact.email == address))


def _tests(workflow: Workflow) -> list[Enrolment]:
    return list(db.session.scalars(select(Enrolment).where(
        Enrolment.workflow_id == workflow.id, Enrolment.test.is_(True))
        .order_by(Enrolment.id.desc()).limit(5)))


@require_role("editor")
def test(workflow_id: int) -> Any:
    workflow = workflow_or_404(workflow_id)
    dry, error, who = None, None, request.form.get("contact", "")[:320]
    if request.method == "POST":
        contact_id = _contact_id(who)
        try:
            if contact_id is None:
                raise WorkflowError(f"No contact “{who}”: give an address or a contact's id.")
            if request.form.get("how") == "dry":
                dry = testing.dry_run(workflow, contact_id)
            else:
                with write():
                    made = testing.start_test(workflow, contact_id, current_user.email)
                    audit.record(current_user, "workflows.test", workflow.name,
                                 {"contact": contact_id, "enrolment": made.id})
                flash(f"Test run started for {who}: its emails come to {current_user.email}.")
                return redirect(url_for("workflows_admin.test", workflow_id=workflow.id))
        except WorkflowError as exc:
            error = str(exc)
    definition = service.current(workflow).get("steps", {})
    tests = [(e, [(admin_words.label(r.step, definition.get(r.step)), r)
                  for r in service.history(e.id)]) for e in _tests(workflow)]
    return render_template("workflows/test.html", workflow=workflow, dry=dry, error=error,
                           who=who, tests=tests), 400 if error else 200
