"""`record(actor, action, target, details)`: every admin action leaves a line owners can read."""
from __future__ import annotations

from typing import Any

from flask import has_request_context, request
from sqlalchemy import select

from engine.admin.models import AuditEntry
from engine.db import db, utcnow, write


def _actor_fields(actor: Any) -> tuple[int | None, str]:
    if actor is None:
        return None, "system"
    if isinstance(actor, str):
        return None, actor[:254]
    return getattr(actor, "id", None), str(getattr(actor, "email", actor))[:254]


def record(actor: Any, action: str, target: Any = "",
           details: dict[str, Any] | None = None) -> AuditEntry:
    """Store one entry, inside the caller's write() when there is one (so it commits with the
    change it describes, or not at all)."""
    actor_id, label = _actor_fields(actor)
    entry = AuditEntry(created_at=utcnow(), actor_id=actor_id, actor=label, action=action[:100],
                       target=str(target)[:300], details=details or {},
                       address=(request.remote_addr or "")[:64] if has_request_context() else "")
    with write() as session:
        session.add(entry)
    return entry


def recent(limit: int = 100, before_id: int | None = None,
           action: str | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before_id:
        query = query.where(AuditEntry.id < before_id)
    if action:
        query = query.where(AuditEntry.action.startswith(action))
    return list(db.session.scalars(query))
