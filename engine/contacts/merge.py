"""Merging duplicate contacts, recorded and reversible.

Mautic's users lose data to wrong, irreversible merges; here a merge keeps the losing contact
(marked `merged`, pointing at the winner), fills only the winner's empty fields from it, and
writes down everything it moved. `undo()` puts each of those things back.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from engine import events
from engine.contacts import touches
from engine.contacts.identity import FIRST_CLAIM, LINKED
from engine.contacts.models import (
    Contact,
    ContactMerge,
    ContactTag,
    Subscription,
    Visitor,
)
from engine.contacts.service import STANDARD_FIELDS, snapshot
from engine.db import db, utcnow, write
from engine.events.models import Activity


class MergeError(ValueError):
    pass


def merge(winner_id: int, loser_id: int, actor: str) -> ContactMerge:
    """Merge `loser_id` into `winner_id`; returns the merge record (its id undoes it)."""
    if winner_id == loser_id:
        raise MergeError("a contact cannot be merged into itself")
    with write() as session:
        winner, loser = session.get(Contact, winner_id), session.get(Contact, loser_id)
        if winner is None or loser is None:
            raise MergeError("both contacts must exist")
        if winner.status != "active" or loser.status != "active":
            raise MergeError("only active contacts can be merged")
        record = ContactMerge(winner_id=winner_id, loser_id=loser_id, actor=actor[:200],
                              winner_before=snapshot(winner), loser_before=snapshot(loser))
        won: dict[str, Any] = {}
        for key in (*STANDARD_FIELDS, "company_id"):
            if key != "email" and not getattr(winner, key) and getattr(loser, key):
                setattr(winner, key, getattr(loser, key))
                won[key] = getattr(loser, key)
        custom = dict(winner.custom or {})
        for key, value in (loser.custom or {}).items():
            if custom.get(key) in (None, "", []) and value not in (None, "", []):
                custom[key] = value
                won[f"custom.{key}"] = value
        winner.custom = custom
        if loser.consent == "granted" and winner.consent == "unknown":
            winner.consent, winner.consent_at = loser.consent, loser.consent_at
            winner.consent_proof = dict(loser.consent_proof or {})
            won["consent"] = "granted"
        if _came_first(loser, winner):
            winner.first_touch = dict(loser.first_touch)
            won["first_touch"] = dict(loser.first_touch)

        activity_ids = list(session.scalars(select(Activity.id)
                                            .where(Activity.contact_id == loser_id)))
        visitor_ids = list(session.scalars(select(Visitor.id)
                                           .where(Visitor.contact_id == loser_id)))
        winner_lists = set(session.scalars(select(Subscription.list_slug)
                                           .where(Subscription.contact_id == winner_id)))
        sub_ids = [s.id for s in session.scalars(select(Subscription).where(
            Subscription.contact_id == loser_id)) if s.list_slug not in winner_lists]
        winner_tags = set(session.scalars(select(ContactTag.tag_id)
                                          .where(ContactTag.contact_id == winner_id)))
        tag_ids = [t for t in session.scalars(select(ContactTag.tag_id)
                                              .where(ContactTag.contact_id == loser_id))
                   if t not in winner_tags]
        _move(Activity, activity_ids, winner_id)
        _move(Visitor, visitor_ids, winner_id)
        # Having typed the loser's address first proves nothing about the winner.
        for start in range(0, len(visitor_ids), 500):
            session.execute(update(Visitor).where(
                Visitor.id.in_(visitor_ids[start:start + 500]),
                Visitor.trust == FIRST_CLAIM).values(trust=LINKED))
        _move(Subscription, sub_ids, winner_id)
        for tag_id in tag_ids:
            session.add(ContactTag(contact_id=winner_id, tag_id=tag_id))

        loser.status, loser.merged_into_id = "merged", winner_id
        winner.updated_at = utcnow()
        record.values_won = won
        record.moved = {"activities": activity_ids, "visitors": visitor_ids,
                        "subscriptions": sub_ids, "tags": tag_ids}
        session.add(record)
        session.flush()
        session.expire(winner, ["tags"])
        events.defer([{"type": "contact_merged", "contact_id": winner_id,
                       "properties": {"merged": loser_id, "by": actor[:200]}}])
    return record


def _move(model: Any, ids: list[Any], contact_id: int, only_from: int | None = None) -> None:
    """Give rows to `contact_id`; with `only_from`, only those still with that contact."""
    for start in range(0, len(ids), 500):
        where = [model.id.in_(ids[start:start + 500])]
        if only_from is not None:
            where.append(model.contact_id == only_from)
        db.session.execute(update(model).where(*where).values(contact_id=contact_id))


def undo(merge_id: int, actor: str) -> ContactMerge:
    """Reverse a merge: the loser comes back with its values, events, browsers, lists and tags.

    The winner's fields that the merge filled are emptied again unless changed since. Only
    the latest state can be unwound: a merge whose winner was merged or erased since, or whose
    loser is no longer merged into it, is refused (undo the later merge first).
    """
    with write() as session:
        record = session.get(ContactMerge, merge_id)
        if record is None:
            raise MergeError(f"no merge {merge_id}")
        if record.undone_at is not None:
            raise MergeError("this merge was already undone")
        winner = session.get(Contact, record.winner_id)
        loser = session.get(Contact, record.loser_id)
        if winner is None or loser is None or "erased" in (winner.status, loser.status):
            raise MergeError("one of the contacts was erased since")
        if winner.status != "active":
            raise MergeError(f"{winner.email} was merged into another contact since: undo that "
                             "merge first")
        if loser.status != "merged" or loser.merged_into_id != winner.id:
            raise MergeError(f"{loser.email} is no longer merged into {winner.email}")
        moved = record.moved or {}
        _move(Activity, moved.get("activities", []), loser.id, only_from=winner.id)
        _move(Visitor, moved.get("visitors", []), loser.id, only_from=winner.id)
        _move(Subscription, moved.get("subscriptions", []), loser.id, only_from=winner.id)
        if moved.get("tags"):
            session.execute(ContactTag.__table__.delete().where(
                ContactTag.contact_id == winner.id, ContactTag.tag_id.in_(moved["tags"])))
        custom = dict(winner.custom or {})
        for key, value in (record.values_won or {}).items():
            if key.startswith("custom."):
                if custom.get(key[7:]) == value:
                    custom.pop(key[7:], None)
            elif key == "consent":
                before = record.winner_before
                winner.consent = before.get("consent", "unknown")
                winner.consent_proof = before.get("consent_proof") or {}
                winner.consent_at = None
            elif key == "first_touch":
                winner.first_touch = record.winner_before.get("first_touch") or {}
            elif getattr(winner, key) == value:
                setattr(winner, key, record.winner_before.get(key)
                        or ("" if key != "company_id" else None))
        winner.custom = custom
        loser.status, loser.merged_into_id = "active", None
        winner.updated_at = loser.updated_at = utcnow()
        record.undone_at, record.undone_by = utcnow(), actor[:200]
        session.flush()
        session.expire(winner, ["tags"])
        events.defer([{"type": "merge_undone", "contact_id": winner.id,
                       "properties": {"restored": loser.id, "by": actor[:200]}}])
    return record


def merges_of(contact_id: int) -> list[ContactMerge]:
    return list(db.session.scalars(select(ContactMerge).where(
        (ContactMerge.winner_id == contact_id) | (ContactMerge.loser_id == contact_id))
        .order_by(ContactMerge.id.desc())))


def _came_first(loser: Contact, winner: Contact) -> bool:
    """Whether the loser's first touch is the earlier one (the merged contact keeps the earliest
    first touch); touches stored without a time compare by when each contact was made."""
    theirs, ours = loser.first_touch or {}, winner.first_touch or {}
    if not theirs:
        return False
    if theirs.get("at") and ours.get("at"):
        return touches.earlier_first(ours, theirs)
    return not ours or loser.created_at < winner.created_at
