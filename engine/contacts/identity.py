"""Identity resolution: a browser's anonymous history joins the contact it turns out to be.

A visitor id (the signed cookie of `engine.contacts.visitors`) belongs to at most one contact; a
contact can have several (phone, laptop). When a visitor identifies (a form, a click in an
email), `identify()` links them and hands the visitor's earlier anonymous activity to the contact.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, select, update
from sqlalchemy.dialects import postgresql, sqlite

from engine.contacts.models import Activity, Contact, Visitor
from engine.db import db, delete_in_chunks, utcnow


def _upsert(dialect: str):  # type: ignore[no-untyped-def]
    return (postgresql if dialect == "postgresql" else sqlite).insert


def touch(visitor_id: str, contact_id: int | None = None, seen_at: datetime | None = None) -> None:
    """Create or refresh a visitor row (inside `write()`); links it when `contact_id` is given."""
    now = seen_at or utcnow()
    insert = _upsert(db.session.get_bind().dialect.name)
    values = {"id": visitor_id, "first_seen": now, "last_seen": now}
    set_ = {"last_seen": now}
    if contact_id is not None:
        values["contact_id"] = contact_id
        set_["contact_id"] = contact_id
    stmt = insert(Visitor).values(**values)
    db.session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=set_))


def identify(visitor_id: str, contact_id: int) -> int:
    """Link the visitor to the contact and give it the visitor's anonymous activity.

    Call inside `write()`. Returns how many earlier events joined the contact. A visitor who
    was someone else before (a shared computer) is re-linked; their old events stay with the
    contact they belonged to.
    """
    touch(visitor_id, contact_id)
    return db.session.execute(
        update(Activity).where(Activity.visitor_id == visitor_id, Activity.contact_id.is_(None))
        .values(contact_id=contact_id)).rowcount


def contact_for_visitor(visitor_id: str | None) -> Contact | None:
    """The active contact this browser belongs to (following merges), or None."""
    if not visitor_id:
        return None
    visitor = db.session.get(Visitor, visitor_id)
    if visitor is None or visitor.contact_id is None:
        return None
    return resolve(visitor.contact_id)


def resolve(contact_id: int) -> Contact | None:
    """The contact, or the one it was merged into; None for an erased contact."""
    contact = db.session.get(Contact, contact_id)
    seen = set()
    while contact is not None and contact.merged_into_id and contact.id not in seen:
        seen.add(contact.id)
        contact = db.session.get(Contact, contact.merged_into_id)
    if contact is None or contact.status == "erased":
        return None
    return contact


# --- batches, for ingest paths that see thousands of visitors at once -----------------------

def contacts_of(visitor_ids: set[str]) -> dict[str, int]:
    """`{visitor id: contact id}` for the visitors already identified."""
    if not visitor_ids:
        return {}
    return dict(db.session.execute(
        select(Visitor.id, Visitor.contact_id)
        .where(Visitor.id.in_(visitor_ids), Visitor.contact_id.is_not(None))).all())


def touch_many(last_seen: dict[str, datetime]) -> None:
    """`touch` for a whole batch in one statement (inside `write()`); never links: linking
    stays `identify`'s job."""
    if not last_seen:
        return
    stmt = _upsert(db.session.get_bind().dialect.name)(Visitor.__table__)
    stmt = stmt.on_conflict_do_update(index_elements=["id"],
                                      set_={"last_seen": stmt.excluded.last_seen})
    db.session.execute(stmt, [{"id": vid, "first_seen": seen, "last_seen": seen,
                               "contact_id": None} for vid, seen in sorted(last_seen.items())])


def visitors_of(contact_id: int) -> list[str]:
    """Every browser known to belong to the contact."""
    return list(db.session.scalars(select(Visitor.id).where(Visitor.contact_id == contact_id)))


def identified_visitors() -> Select[tuple[str]]:
    """A subquery of the visitor ids linked to a contact (for other modules' filters)."""
    return select(Visitor.id).where(Visitor.contact_id.is_not(None))


def prune_anonymous_visitors(before: datetime) -> int:
    """Delete visitor rows never linked to a contact and last seen before `before`."""
    return delete_in_chunks(Visitor, Visitor.contact_id.is_(None), Visitor.last_seen < before)
