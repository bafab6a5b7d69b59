"""Where tracking meets the contact store's visitor rows, in bulk.

`engine.contacts.identity` offers one visitor at a time (`touch`, `contact_for_visitor`), which
costs one statement per visitor: a batch of 5,000 events from 5,000 new browsers would spend
most of its time there. These functions do the same work for a whole batch in one statement,
with the same meaning: `touch_many` is `identity.touch` without linking (linking stays
`identity.identify`'s job).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from engine.contacts.models import Visitor
from engine.db import db


def contacts_of(visitor_ids: set[str]) -> dict[str, int]:
    """`{visitor id: contact id}` for the visitors already identified."""
    if not visitor_ids:
        return {}
    return dict(db.session.execute(
        select(Visitor.id, Visitor.contact_id)
        .where(Visitor.id.in_(visitor_ids), Visitor.contact_id.is_not(None))).all())


def touch_many(last_seen: dict[str, datetime]) -> None:
    """Create or refresh the visitor rows of a batch (inside `write()`)."""
    if not last_seen:
        return
    dialect = db.session.get_bind().dialect.name
    table = Visitor.__table__
    stmt = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=["id"],
                                      set_={"last_seen": stmt.excluded.last_seen})
    db.session.execute(stmt, [{"id": vid, "first_seen": seen, "last_seen": seen, "contact_id": None}
                              for vid, seen in sorted(last_seen.items())])


def visitors_of(contact_id: int) -> list[str]:
    """Every browser known to belong to the contact."""
    return list(db.session.scalars(select(Visitor.id).where(Visitor.contact_id == contact_id)))
