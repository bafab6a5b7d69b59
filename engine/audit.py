"""The audit log: who did what, and when, written by auth, the admin, the CLI and plugins.

`record(actor, action, target, details)` stores one entry inside the caller's `write()` when
there is one, so it commits with the change it describes, or not at all. It sits below every
concern that acts on behalf of a person, so none of them reaches up into the admin for it.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import has_request_context, request
from sqlalchemy import JSON, Integer, String, select, update
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import UTCDateTime, db, utcnow, write


class AuditEntry(db.Model):
    """One action. The actor's email is copied so the entry outlives the account."""

    __branch__ = "admin"  # its table was made, and is migrated, by the admin's branch
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer, index=True)
    actor: Mapped[str] = mapped_column(String(254), default="")
    action: Mapped[str] = mapped_column(String(100), index=True)
    target: Mapped[str] = mapped_column(String(300), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    address: Mapped[str] = mapped_column(String(64), default="")



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


def forget_values(targets: list[str]) -> int:
    """Empty the details of the entries about these targets, inside the caller's `write()`:
    a person erased (GDPR) leaves no old or new values of theirs here, while who did what,
    and when, stays. Returns how many entries were emptied."""
    if not targets:
        return 0
    with write() as session:
        result = session.execute(update(AuditEntry).where(AuditEntry.target.in_(targets))
                                 .values(details={"erased": True}))
    return int(result.rowcount or 0)


def recent(limit: int = 100, before_id: int | None = None,
           action: str | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before_id:
        query = query.where(AuditEntry.id < before_id)
    if action:
        query = query.where(AuditEntry.action.startswith(action))
    return list(db.session.scalars(query))
