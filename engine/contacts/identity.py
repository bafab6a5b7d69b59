"""Identity resolution: a browser's anonymous history joins the contact it turns out to be.

A visitor id (the signed cookie of `engine.contacts.visitors`) belongs to at most one contact; a
contact can have several (phone, laptop). When a visitor identifies (a form, a click in an
email), `identify()` links them and hands the visitor's earlier anonymous activity to the contact.

A link is also a question of trust, because anyone can type someone else's address into a
form. Every link joins the browser's activity to the contact's timeline, but only a *trusted*
browser is treated as the person (`trusted_contact_for_visitor`): forms prefill what the site
knows, skip what it already has, and greet them by name. A browser is trusted when it gave the
address first (`FIRST_CLAIM`: the submission created the contact) or opened a link sent to the
address (`PROVED`: a double opt-in confirmation). When another browser later gives the same
address, nobody can tell which of the two is the person, so the first-claim trust ends
(`revoke_first_claims`); a proved one stays.
"""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, and_, case, select, update
from sqlalchemy.orm import lazyload

from engine import bulk, events
from engine.contacts.models import Contact, Visitor
from engine.contacts.store import connection, dialect_insert
from engine.db import db, delete_in_chunks, utcnow
from engine.events.models import Activity

VISITORS, ACTIVITIES = Visitor.__table__, Activity.__table__
_LAZY_TAGS = (lazyload(Contact.tags),)
LINKED, FIRST_CLAIM, PROVED = 0, 1, 2  # Visitor.trust


@lru_cache(maxsize=4)
def _touch_statement(dialect: str, link: bool) -> Any:
    stmt = dialect_insert(dialect)(VISITORS)
    set_: dict[str, Any] = {"last_seen": stmt.excluded.last_seen}
    if link:  # the same contact keeps the greater trust; another contact starts afresh
        set_["contact_id"] = stmt.excluded.contact_id
        set_["trust"] = case((and_(VISITORS.c.contact_id == stmt.excluded.contact_id,
                                   VISITORS.c.trust > stmt.excluded.trust), VISITORS.c.trust),
                             else_=stmt.excluded.trust)
    return stmt.on_conflict_do_update(index_elements=["id"], set_=set_)


def touch(visitor_id: str, contact_id: int | None = None, seen_at: datetime | None = None,
          trust: int = LINKED) -> None:
    """Create or refresh a visitor row (inside `write()`); links it when `contact_id` is given."""
    now = seen_at or utcnow()
    stmt = _touch_statement(db.session.get_bind().dialect.name, contact_id is not None)
    connection().execute(stmt, {"id": visitor_id, "first_seen": now, "last_seen": now,
                                "contact_id": contact_id, "trust": trust})


def identify(visitor_id: str, contact_id: int, new: bool = False, trust: int = LINKED) -> int:
    """Link the visitor to the contact and give it the visitor's anonymous activity.

    Call inside `write()`. Returns how many earlier events joined the contact. A visitor who
    was someone else before (a shared computer) is re-linked; their old events stay with the
    contact they belonged to. `new`: the visitor id was made for this very request, so no
    earlier activity can carry it and there is nothing to hand over. `trust`: see the module
    docstring; a browser never loses trust in its own contact by being linked again.
    """
    touch(visitor_id, contact_id, trust=trust)
    if new:
        return 0
    joined = connection().execute(
        update(ACTIVITIES).where(ACTIVITIES.c.visitor_id == visitor_id,
                                 ACTIVITIES.c.contact_id.is_(None))
        .values(contact_id=contact_id)).rowcount
    if joined:  # what they did before is now the contact's: segments on activity may change
        events.defer([{"type": "visitor_identified", "contact_id": contact_id,
                       "visitor_id": visitor_id, "properties": {"events": joined}}])
    return joined


def revoke_first_claims(contact_id: int, claimed_by: str | None) -> None:
    """Another browser gave this contact's address (inside `write()`): browsers trusted only
    for having given it first are trusted no more."""
    connection().execute(update(VISITORS).where(
        VISITORS.c.contact_id == contact_id, VISITORS.c.trust == FIRST_CLAIM,
        VISITORS.c.id != (claimed_by or "")).values(trust=LINKED))


def contact_for_visitor(visitor_id: str | None) -> Contact | None:
    """The active contact this browser belongs to (following merges), or None: whose timeline
    its activity joins, whatever the trust."""
    if not visitor_id:
        return None
    visitor = db.session.get(Visitor, visitor_id)
    if visitor is None or visitor.contact_id is None:
        return None
    return resolve(visitor.contact_id)


def trusted_contact_for_visitor(visitor_id: str | None) -> Contact | None:
    """The contact this browser may act as (see the module docstring), or None."""
    if not visitor_id:
        return None
    row = db.session.execute(select(VISITORS.c.contact_id, VISITORS.c.trust).where(
        VISITORS.c.id == visitor_id)).first()
    if row is None or row.contact_id is None or row.trust < FIRST_CLAIM:
        return None
    return resolve(row.contact_id)


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


def touch_many(seen: dict[str, tuple[datetime, datetime]]) -> None:
    """`touch` for a whole batch in one statement (inside `write()`, an upsert through
    `engine.bulk`: the tracking drain touches thousands of browsers a batch). `seen` gives each
    browser's first and last time in the batch: a new browser is first seen at the first, a
    known one last seen at the last. Never links: linking stays `identify`'s job."""
    if not seen:
        return
    bulk.insert_rows(db.session.connection(), VISITORS,
                     [{"id": vid, "first_seen": first, "last_seen": last, "contact_id": None}
                      for vid, (first, last) in sorted(seen.items())],
                     skip_conflicts=("id",), overwrite=("last_seen",))


def visitors_of(contact_id: int) -> list[str]:
    """Every browser known to belong to the contact."""
    return list(db.session.scalars(select(Visitor.id).where(Visitor.contact_id == contact_id)))


def identified_visitors() -> Select[tuple[str]]:
    """A subquery of the visitor ids linked to a contact (for other modules' filters)."""
    return select(Visitor.id).where(Visitor.contact_id.is_not(None))


def prune_anonymous_visitors(before: datetime) -> int:
    """Delete visitor rows never linked to a contact and last seen before `before`."""
    return delete_in_chunks(Visitor, Visitor.contact_id.is_(None), Visitor.last_seen < before)
