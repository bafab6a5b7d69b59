"""API keys (owners only): made here, shown once, stored as a hash (`engine.api.keys`), revoked
at once. A key lets an outside system (a shop, a CRM) send events to `POST /api/v1/events`."""
from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from engine import audit
from engine.admin.blueprint import bp
from engine.api import keys
from engine.api.endpoint import PATH
from engine.api.models import ApiKey
from engine.auth import require_role
from engine.db import db, write


def _page(new_key: str | None = None, name: str = "", error: str | None = None,
          status: int = 200) -> Any:
    site = (current_app.config.get("SITE_URL") or request.url_root).rstrip("/")
    return render_template("admin/api_keys.html", keys=keys.active(), new_key=new_key,
                           name=name, error=error, endpoint=site + PATH), status


@bp.get("/api-keys")
@require_role("owner")
def api_keys_list() -> Any:
    return _page()


@bp.post("/api-keys")
@require_role("owner")
def api_keys_create() -> Any:
    """The new key is in this answer only: it is stored as a hash and never shown again."""
    name = (request.form.get("name") or "").strip()[:200]
    try:
        with write():
            row, key = keys.create(name, current_user.id)
            audit.record(current_user, "api_key.create", row.name, {"prefix": row.prefix})
    except ValueError as exc:
        return _page(name=name, error=str(exc), status=400)
    return _page(new_key=key, name=row.name)


@bp.post("/api-keys/<int:key_id>/revoke")
@require_role("owner")
def api_keys_revoke(key_id: int) -> Any:
    row = db.session.get(ApiKey, key_id)
    if row is None:
        abort(404)
    name, prefix = row.name, row.prefix
    with write():
        keys.revoke(key_id)
        audit.record(current_user, "api_key.revoke", name, {"prefix": prefix})
    flash(f"The key “{name}” is revoked: requests with it are refused from now on.")
    return redirect(url_for("admin.api_keys_list"))
