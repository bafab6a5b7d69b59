"""GDPR: a person's data as JSON (right of access) and erasure that keeps the numbers.

Erasure anonymises rather than deletes: the contact row stays (as `erased`, with no personal
data) so conversion counts, attribution and campaign figures stay right, while everything that
names or tracks the person (email, names, phone, custom values, consent proof, browser ids,
event properties, submitted form values) is removed.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update

from engine import audit, events, plugins
from engine.contacts import touches
from engine.contacts.merge import merges_of
from engine.contacts.models import (
    Contact,
    ContactMerge,
    ContactNote,
    ContactTag,
    Subscription,
    Visitor,
)
from engine.contacts.service import snapshot
from engine.db import db, utcnow, write
from engine.events.models import Activity


@dataclass(frozen=True)
class Person:
    """Whom an export or erasure is about: the contact and everyone merged into them, the
    browsers that were theirs and every address they had."""

    contact_ids: list[int]
    visitor_ids: list[str]
    emails: list[str]


@dataclass(frozen=True)
class PersonalData:
    """One place where a concern or plugin keeps data about people (`register_personal_data`).

    `export(person)` returns JSON-ready data, shown in the export under `name`; `erase(person)`
    deletes or anonymises it inside the erasure's transaction."""

    name: str
    export: Callable[[Person], Any]
    erase: Callable[[Person], None]


def _places() -> list[PersonalData]:
    return [place for _slug, place in plugins.current().collect("register_personal_data")]


def _person(contact_id: int) -> Person:
    ids = merged_ids(contact_id)
    people = list(db.session.execute(select(Contact.email).where(Contact.id.in_(ids))).scalars())
    browsers = list(db.session.scalars(select(Visitor.id).where(Visitor.contact_id.in_(ids))))
    return Person(contact_ids=ids, visitor_ids=browsers, emails=people)


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def merged_ids(contact_id: int) -> list[int]:
    """The contact and every contact merged into it, so their data comes along."""
    ids, frontier = [contact_id], [contact_id]
    while frontier:
        frontier = list(db.session.scalars(select(Contact.id)
                                           .where(Contact.merged_into_id.in_(frontier))))
        ids += frontier
    return ids


def export_contact(contact_id: int) -> dict[str, Any]:
    """Everything stored about one person, as JSON-ready data: the contact store's own tables,
    then every place registered with `register_personal_data` (submissions, mail, plugins')."""
    contact = db.session.get(Contact, contact_id)
    if contact is None:
        raise LookupError(f"no contact {contact_id}")
    person = _person(contact_id)
    ids = person.contact_ids
    return {
        "contact": snapshot(contact),
        "company": contact.company.name if contact.company else None,
        "tags": sorted(t.name for t in contact.tags),
        "lists": [{"list": s.list_slug, "status": s.status, "since": _iso(s.created_at),
                   "confirmed_at": _iso(s.confirmed_at)}
                  for s in db.session.scalars(select(Subscription)
                                              .where(Subscription.contact_id.in_(ids)))],
        "browsers": [{"id": v.id, "first_seen": _iso(v.first_seen), "last_seen": _iso(v.last_seen)}
                     for v in db.session.scalars(select(Visitor)
                                                 .where(Visitor.contact_id.in_(ids)))],
        "activity": [{"type": a.type, "url": a.url, "properties": a.properties,
                      "occurred_at": _iso(a.occurred_at)}
                     for a in db.session.scalars(select(Activity)
                                                 .where(Activity.contact_id.in_(ids))
                                                 .order_by(Activity.occurred_at))],
        "notes": [{"by": n.author, "at": _iso(n.created_at), "text": n.body}
                  for n in db.session.scalars(select(ContactNote)
                                              .where(ContactNote.contact_id.in_(ids))
                                              .order_by(ContactNote.created_at))],
        "merges": [{"winner": m.winner_id, "loser": m.loser_id, "by": m.actor,
                    "at": _iso(m.created_at), "undone_at": _iso(m.undone_at)}
                   for m in merges_of(contact_id)],
        **{place.name: place.export(person) for place in _places()},
        "exported_at": utcnow().isoformat(),
    }


def erase_contact(contact_id: int, actor: str) -> int:
    """Anonymise a person (and the contacts merged into them); keep rows for aggregate counts.
    A contact merged into another is part of that person: the person is erased. Returns the
    id of the contact erased."""
    with write() as session:
        contact = session.get(Contact, contact_id)
        if contact is None:
            raise LookupError(f"no contact {contact_id}")
        seen = {contact.id}
        while contact.merged_into_id and contact.merged_into_id not in seen:
            contact = session.get(Contact, contact.merged_into_id)
            seen.add(contact.id)
        contact_id = contact.id
        who = _person(contact_id)
        ids = who.contact_ids
        for place in _places():  # first, while the addresses are still known
            place.erase(who)
        for person in session.scalars(select(Contact).where(Contact.id.in_(ids))):
            person.email = f"erased-{person.id}@erased.invalid"
            person.first_name = person.last_name = person.phone = person.job_title = ""
            person.country = ""
            person.custom, person.consent_proof = {}, {}
            person.consent, person.consent_at = "withdrawn", None
            person.first_touch = touches.erased(person.first_touch or {})
            person.last_touch = touches.erased(person.last_touch or {})
            person.status, person.company_id = "erased", None
            person.updated_at = utcnow()
        session.execute(update(Activity).where(Activity.contact_id.in_(ids))
                        .values(visitor_id=None, properties={}, url=""))
        browsers = list(session.scalars(select(Visitor.id).where(Visitor.contact_id.in_(ids))))
        session.execute(delete(Visitor).where(Visitor.contact_id.in_(ids)))
        session.execute(delete(ContactTag).where(ContactTag.contact_id.in_(ids)))
        session.execute(delete(ContactNote).where(ContactNote.contact_id.in_(ids)))
        # The admin's edits and notes were audited with their values: those go too.
        audit.forget_values([f"contact {i}" for i in ids])
        session.execute(update(Subscription).where(Subscription.contact_id.in_(ids))
                        .values(status="unsubscribed", source=""))
        # What the merges kept to undo them is personal data too; erased, they cannot be undone.
        session.execute(update(ContactMerge).where(
            or_(ContactMerge.winner_id.in_(ids), ContactMerge.loser_id.in_(ids)))
            .values(winner_before={}, loser_before={}, values_won={}))
        events.defer([{"type": "contact_erased", "contact_id": contact_id,
                       "properties": {"by": actor[:200]}}])
        plugins.current().call("on_contact_erased", contact_ids=ids, visitor_ids=browsers)
    return contact_id
