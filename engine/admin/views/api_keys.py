"""API keys (owners only): made here, shown once, stored as a hash (`engine.api.keys`), revoked
at once. A key lets an outside system (a shop, a CRM) send events to `POST /api/v1/events`;
the page also says how many accepted events wait for the drain and why the latest were
refused (`engine.api.drain`).

Creating a key answers with a redirect (reloading the page then creates nothing), and the
page it leads to shows the new key once: it waits in the session for that one display, never
in an address (which browsers, proxies and logs keep).
"""
from __future__ import annotations

from typing import Any

from flask import (
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user

from engine import audit
from engine.admin.blueprint import bp
from engine.api import drain, keys
from engine.api.endpoint import PATH
from engine.api.models import ApiKey
from engine.auth import require_role
from engine.db import db, write

NEW_KEY = "magnet.new_api_key"  # session: {"id", "key"} of the key made, until it is shown


def _page(new: tuple[ApiKey, str] | None = None, name: str = "", error: str | None = None,
          status: int = 200) -> Any:
    site = (current_app.config.get("SITE_URL") or request.url_root).rstrip("/")
    refused_count, refused = drain.refusals()
    return render_template("admin/api_keys.html", keys=keys.active(),
                           new_row=new[0] if new else None, new_key=new[1] if new else None,
                           name=name, error=error, endpoint=site + PATH,
                           waiting=drain.waiting(), refused_count=refused_count,
                           refused=refused,
                           kept_hours=int(current_app.config["API_IDEMPOTENCY_SECONDS"]) // 3600
                           ), status


def _new_key() -> tuple[ApiKey, str] | None:
    """The key made just before, once: taken out of the session as it is shown (and not shown
    if it was revoked meanwhile)."""
    held = session.pop(NEW_KEY, None)
    if not isinstance(held, dict):
        return None
    row = db.session.get(ApiKey, held.get("id") or 0)
    key = str(held.get("key") or "")
    if row is None or row.revoked_at is not None or row.key_hash != keys.digest(key):
        return None
    return row, key


@bp.get("/api-keys")
@require_role("owner")
def api_keys_list() -> Any:
    return _page(_new_key())


@bp.post("/api-keys")
@require_role("owner")
def api_keys_create() -> Any:
    """The new key goes to the page this redirects to, once; it is stored as a hash only."""
    name = (request.form.get("name") or "").strip()[:200]
    try:
        with write():
            row, key = keys.create(name, current_user.id)
            audit.record(current_user, "api_key.create", row.name, {"prefix": row.prefix})
    except ValueError as exc:
        return _page(name=name, error=str(exc), status=400)
    session[NEW_KEY] = {"id": row.id, "key": key}
    return redirect(url_for("admin.api_keys_list"))


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
    flash(f"The key “{name}” ({prefix}…) is revoked: requests with it are refused from now on.")
    return redirect(url_for("admin.api_keys_list"))
