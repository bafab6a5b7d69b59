"""Event types (owners only): every declared type with its properties, and the owners' own
types for events sent from outside (`engine.events.types.declare_custom`)."""
from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from engine import audit
from engine.admin.blueprint import bp
from engine.api import intake
from engine.auth import require_role
from engine.db import db, write
from engine.events.models import CustomEventType
from engine.events.types import (
    MAX_PROPERTIES,
    EventTypeError,
    PropertyType,
    all_types,
    declare_custom,
    delete_custom,
)
from engine.segments import service as segments

BLANK_ROWS = 3


def _rows(form: Any) -> list[tuple[str, str]]:
    """The property rows posted (`p-<i>-name`, `p-<i>-type`), blank ones included."""
    count = min(form.get("property_rows", BLANK_ROWS, type=int), MAX_PROPERTIES + BLANK_ROWS)
    return [((form.get(f"p-{i}-name") or "").strip()[:60], form.get(f"p-{i}-type") or "string")
            for i in range(max(count, 0))]


def _page(values: dict[str, str] | None = None, rows: list[tuple[str, str]] | None = None,
          error: str | None = None, status: int = 200) -> Any:
    types = sorted(all_types().values(), key=lambda t: (t.source != "custom", t.name))
    return render_template("admin/event_types.html", types=types, values=values or {},
                           rows=rows or [("", "string")] * BLANK_ROWS, error=error,
                           property_types=[t.value for t in PropertyType]), status


@bp.get("/event-types")
@require_role("owner")
def event_types_list() -> Any:
    return _page()


@bp.post("/event-types")
@require_role("owner")
def event_types_create() -> Any:
    form = request.form
    values = {key: (form.get(key) or "").strip()[:1000] for key in ("name", "label",
                                                                   "description")}
    rows = _rows(form)
    if form.get("action") == "more":  # more property rows, nothing saved
        return _page(values, rows + [("", "string")] * BLANK_ROWS)
    properties: dict[str, str] = {}
    for name, kind in rows:
        if name in properties:
            return _page(values, rows, f"The property “{name}” is named twice.", 400)
        if name:
            properties[name] = kind
    try:
        with write():
            row = declare_custom(values["name"], values["label"], properties,
                                 values["description"])
            audit.record(current_user, "event_type.create", row.name,
                         {"label": row.label, "properties": row.properties})
    except EventTypeError as exc:
        return _page(values, rows, str(exc), 400)
    intake.forget_types()
    flash(f"“{row.name}” is declared: send such events with an API key.")
    return redirect(url_for("admin.event_types_list"))


@bp.post("/event-types/<name>/delete")
@require_role("owner")
def event_types_delete(name: str) -> Any:
    row = db.session.get(CustomEventType, name[:50])
    if row is None:
        abort(404)  # the engine's and plugins' own types are not the owners' to delete
    users = segments.using_event_type(row.name)
    if users:  # their conditions would show "Choose…" and could not be saved again
        names = ", ".join(f"“{s.name}”" for s in users)
        flash(f"Not deleted: the segment{'s' if len(users) > 1 else ''} {names} "
              f"use{'' if len(users) > 1 else 's'} “{row.name}” in a condition. Change "
              f"{'them' if len(users) > 1 else 'it'} first.", "error")
        return redirect(url_for("admin.event_types_list"))
    details = {"label": row.label, "properties": dict(row.properties or {})}
    with write():
        delete_custom(row.name)
        audit.record(current_user, "event_type.delete", row.name, details)
    intake.forget_types()
    flash(f"“{row.name}” is no longer declared; the events stored with it stay.")
    return redirect(url_for("admin.event_types_list"))
