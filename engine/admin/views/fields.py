"""Custom fields (owners only): the typed fields of contacts and companies, defined, relabelled,
reordered, retired and restored (`engine.contacts.fields`). Each change is in the audit log."""
from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from engine import audit
from engine.admin.blueprint import bp
from engine.auth import require_role
from engine.contacts import fields
from engine.contacts.models import FIELD_ENTITIES, FIELD_TYPES, CustomField
from engine.contacts.store import ContactError
from engine.db import db, write

ENTITY_LABELS = {"contact": "Contacts", "company": "Companies"}


def _page(values: dict[str, str] | None = None, error: ContactError | None = None,
          status: int = 200) -> Any:
    return render_template("admin/fields_list.html",
                           groups=[(e, ENTITY_LABELS[e], fields.ordered(e))
                                   for e in FIELD_ENTITIES],
                           types=[(t, fields.TYPE_LABELS[t]) for t in FIELD_TYPES],
                           values=values or {"entity": "contact", "type": "text"},
                           error=error), status


def _field(entity: str, key: str) -> CustomField:
    field = db.session.get(CustomField, (entity[:10], key[:60]))
    if field is None:
        abort(404)
    return field


def _back(field: CustomField) -> Any:
    return redirect(url_for("admin.fields_list") + f"#field-{field.entity}-{field.key}")


@bp.get("/fields")
@require_role("owner")
def fields_list() -> Any:
    return _page()


@bp.post("/fields")
@require_role("owner")
def fields_create() -> Any:
    values = {k: (request.form.get(k) or "")[:5000] for k in ("entity", "key", "label", "type",
                                                             "choices")}
    try:
        with write():
            field = fields.define(values["entity"], values["key"], values["label"],
                                  values["type"], values["choices"])
            audit.record(current_user, "field.create", f"{field.entity} field {field.key}",
                         {"new": {"label": field.label, "type": field.type,
                                  "choices": list(field.choices)}})
    except ContactError as exc:
        return _page(values, exc, 400)
    flash(f"The field “{field.label}” was added.")
    return _back(field)


@bp.post("/fields/<entity>/<key>")
@require_role("owner")
def fields_update(entity: str, key: str) -> Any:
    field = _field(entity, key)
    try:
        with write():
            field = _field(entity, key)
            changes = fields.change(field, request.form.get("label", ""),
                                    (request.form.get("choices") or "")[:20000])
            if changes:
                audit.record(current_user, "field.update", f"{field.entity} field {field.key}",
                             {k: {"old": o, "new": n} for k, (o, n) in changes.items()})
    except ContactError as exc:
        flash(f"“{field.label}” was not saved: {exc}", "error")
        return _back(field)
    flash(f"“{field.label}” was saved." if changes else "Nothing changed.")
    return _back(field)


@bp.post("/fields/<entity>/<key>/move")
@require_role("owner")
def fields_move(entity: str, key: str) -> Any:
    step = -1 if request.form.get("direction") == "up" else 1
    with write():
        field = _field(entity, key)
        before = [f.key for f in fields.ordered(field.entity)]
        if fields.move(field, step):
            audit.record(current_user, "field.reorder", f"{field.entity} fields",
                         {"old": before, "new": [f.key for f in fields.ordered(field.entity)]})
    return _back(field)


@bp.post("/fields/<entity>/<key>/retire")
@require_role("owner")
def fields_retire(entity: str, key: str) -> Any:
    retire = request.form.get("retired") != "no"
    with write():
        field = _field(entity, key)
        if fields.set_retired(field, retire):
            audit.record(current_user, "field.retire" if retire else "field.restore",
                         f"{field.entity} field {field.key}",
                         {"old": {"retired": not retire}, "new": {"retired": retire}})
    flash(f"“{field.label}” is retired: hidden from forms and editing, its values kept."
          if retire else f"“{field.label}” is back in forms and editing.")
    return _back(field)
