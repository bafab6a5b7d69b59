"""Identity resolution: a browser's anonymous history joins the contact it turns out to be.

A visitor id (the signed cookie of `engine.contacts.visitors`) belongs to at most one contact; a
contact can have several (phone, laptop). When a visitor identifies (a form, a click in an
email), `identify()` links them and hands the visitor's earlier anonymous activity to the contact.
"""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.orm import lazyload

from engine.contacts.models import Activity, Contact, Visitor
from engine.contacts.store import connection, dialect_insert
from engine.db import db, delete_in_chunks, utcnow

VISITORS, ACTIVITIES = Visitor.__table__, Activity.__table__
_LAZY_TAGS = (lazyload(Contact.tags),)


@lru_cache(maxsize=4)
def _touch_statement(dialect: str, link: bool) -> Any:
    stmt = dialect_insert(dialect)(VISITORS)
    set_ = {"last_seen": stmt.excluded.last_seen}
    if link:
        set_["contact_id"] = stmt.excluded.contact_id
    return stmt.on_conflict_do_update(index_elements=["id"], set_=set_)


def touch(visitor_id: str, contact_id: int | None = None, seen_at: datetime | None = None) -> None:
    """Create or refresh a visitor row (inside `write()`); links it when `contact_id` is given."""
    now = seen_at or utcnow()
    stmt = _touch_statement(db.session.get_bind().dialect.name, contact_id is not None)
    connection().execute(stmt, {"id": visitor_id, "first_seen": now, "last_seen": now,
                                "contact_id": contact_id})


def identify(visitor_id: str, contact_id: int, new: bool = False) -> int:
    """Link the visitor to the contact and give it the visitor's anonymous activity.

    Call inside `write()`. Returns how many earlier events joined the contact. A visitor who
    was someone else before (a shared computer) is re-linked; their old events stay with the
    contact they belonged to. `new`: the visitor id was made for this very request, so no
    earlier activity can carry it and there is nothing to hand over.
    """
    touch(visitor_id, contact_id)
    if new:
        return 0
    return connection().execute(
        update(ACTIVITIES).where(ACTIVITIES.c.visitor_id == visitor_id,
                                 ACTIVITIES.c.contact_id.is_(None))
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
    """The contact, or the one it was merged into; None for an erased contact.

    Tags are loaded when first used rather than with the contact: most callers (forms, hooks
    in the worker) never look at them.
    """
    contact = db.session.get(Contact, contact_id, options=_LAZY_TAGS)
    seen = set()
    while contact is not None and contact.merged_into_id and contact.id not in seen:
        seen.add(contact.id)
        contact = db.session.get(Contact, contact.merged_into_id, options=_LAZY_TAGS)
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
    stmt = dialect_insert(db.session.get_bind().dialect.name)(VISITORS)
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
