"""Reading the activity timeline (each contact's events) and pruning anonymous ones. Events are
written by the event stream (`engine.events.record`), whoever records them."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select

from engine.db import db, delete_in_chunks
from engine.events.models import Activity


def timeline(contact_id: int, limit: int = 200, before: int | None = None,
             types: Iterable[str] = ()) -> list[Activity]:
    """A contact's events, newest first (merged contacts' events moved here are included);
    only those of `types` when given."""
    condition = Activity.contact_id == contact_id
    wanted = list(types)
    if wanted:
        condition = and_(condition, Activity.type.in_(wanted))
    return newest_first(condition, limit, before)


def newest_first(condition: Any, limit: int, before: int | None = None) -> list[Activity]:
    """The events matching `condition`, newest first, a page at a time (a contact's timeline,
    a company's contacts' events).

    `before` is the id of the oldest event already shown (one that matches `condition`, or
    the page is empty): the page continues strictly after it in (occurred_at, id) order, a
    keyset on the (contact_id, occurred_at) index, so the thousandth page of a busy contact
    costs what the first does.
    """
    query = select(Activity).where(condition)
    if before is not None:
        edge = db.session.scalar(select(Activity).where(Activity.id == before, condition))
        if edge is None:
            return []
        query = query.where(or_(Activity.occurred_at < edge.occurred_at,
                                and_(Activity.occurred_at == edge.occurred_at,
                                     Activity.id < edge.id)))
    return list(db.session.scalars(query.order_by(Activity.occurred_at.desc(),
                                                  Activity.id.desc()).limit(limit)))


def prune_anonymous(before: datetime, types: Iterable[str]) -> int:
    """Delete anonymous activity of the given types older than `before` (retention); a known
    contact's timeline is kept until the contact is erased."""
    return delete_in_chunks(Activity, Activity.contact_id.is_(None),
                            Activity.visitor_id.is_not(None), Activity.type.in_(list(types)),
                            Activity.occurred_at < before)
