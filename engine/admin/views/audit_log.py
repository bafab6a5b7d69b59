"""The audit log, for owners: who did what, and when."""
from __future__ import annotations

from typing import Any

from flask import render_template, request

from engine import audit
from engine.admin.blueprint import bp, row_id
from engine.auth import require_role

PAGE = 100


@bp.get("/audit")
@require_role("owner")
def audit_log() -> Any:
    before = request.args.get("before", type=row_id)
    action = (request.args.get("action") or "").strip()[:100] or None
    entries = audit.recent(PAGE + 1, before_id=before, action=action)
    more = len(entries) > PAGE
    return render_template("admin/audit.html", entries=entries[:PAGE], action=action or "",
                           next_before=entries[PAGE - 1].id if more else None)
