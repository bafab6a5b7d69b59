"""Lists: who is on each one, and putting people on a list by hand or by import.

A list is only a slug on subscriptions (`list_subscriptions`): it exists once someone is on it
(or a form names it, which the forms concern knows). A sign-up form opens a subscription as
`pending` until the person confirms; an editor adding someone, or an import bringing a list
from another tool, vouches for them, so those join as `subscribed` at once
(`store.subscribe_confirmed`). Nobody who unsubscribed is put back by anyone but themselves.

Counts and members leave out merged contacts: a merged contact's subscriptions that did not
move belong to a person counted already, as the contact they were merged into.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from engine.contacts import store
from engine.contacts.identity import resolve
from engine.contacts.models import Contact, Subscription
from engine.contacts.service import consent_values, find_by_email, normalise_email
from engine.contacts.store import ContactError
from engine.db import db, utcnow, write

SLUG = re.compile(r"^[a-z0-9-]{1,100}$")
STATUSES = ("subscribed", "pending", "unsubscribed")
PER_PAGE = 50
# The admin's import to a list reads the whole upload first (checking every row before writing
# any); 20 MB is about 200,000 contacts. `magnet contacts import --list` has no limit.
UPLOAD_CONFIG = "CONTACTS_IMPORT_UPLOAD_BYTES"
UPLOAD_BYTES = 20 * 1024 * 1024


def check_slug(slug: str) -> str:
    """A new list's slug, or a ContactError saying what a slug may hold. (Lists that exist
    already keep whatever slug a form gave them.)"""
    if not SLUG.match(slug or ""):
        raise ContactError("A list's name may hold only lowercase letters, digits and hyphens "
                           "(1 to 100 of them), like “newsletter” or “product-news”.", "list")
    return slug


def _counted() -> Any:
    """Subscriptions of contacts that are people of their own (not merged into another)."""
    return (select(Subscription.list_slug, Subscription.status, func.count())
            .join(Contact, Contact.id == Subscription.contact_id)
            .where(Contact.status != "merged")
            .group_by(Subscription.list_slug, Subscription.status))


def counts(slug: str | None = None) -> dict[str, dict[str, int]]:
    """`{list: {status: count}}` of every list with someone on it (or of one list), every
    status present; one grouped query."""
    query = _counted() if slug is None else _counted().where(Subscription.list_slug == slug)
    found: dict[str, dict[str, int]] = {}
    for list_slug, status, count in db.session.execute(query):
        found.setdefault(list_slug, dict.fromkeys(STATUSES, 0))[status] = count
    return found


def members(slug: str, status: str = "", after: int | None = None,
            limit: int = PER_PAGE) -> list[tuple[Subscription, Contact]]:
    """One keyset page of a list's members, newest subscription first (`after`: the last
    subscription id of the page before), so page 1,000 costs what page 1 does."""
    query = (select(Subscription, Contact).join(Contact, Contact.id == Subscription.contact_id)
             .where(Subscription.list_slug == slug, Contact.status != "merged")
             .order_by(Subscription.id.desc()).limit(limit))
    if status:
        query = query.where(Subscription.status == status)
    if after:
        query = query.where(Subscription.id < after)
    return [(sub, contact) for sub, contact in db.session.execute(query)]


@dataclass
class Added:
    """What `add()` did: the contact, and whether it was created or joined the list now."""

    contact_id: int
    email: str
    created: bool
    joined: bool


def add(email: str, slug: str, *, by: str) -> Added:
    """Put one person on a list as subscribed (an editor's act; `by` is who): the contact is
    created when new (consent unknown), a pending subscription becomes confirmed. Raises
    ContactError, changing nothing, for a bad address, an erased person or someone who
    unsubscribed from this list."""
    address = normalise_email(email)
    known = find_by_email(address)
    if known is not None:
        status = db.session.scalar(select(Subscription.status).where(
            Subscription.contact_id == known.id, Subscription.list_slug == slug))
        if status == "unsubscribed" or known.consent == "withdrawn":
            why = ("unsubscribed from this list" if status == "unsubscribed"
                   else "withdrew their consent")
            raise ContactError(f"{known.email} {why}, so they cannot be put on it by hand: "
                               "only they can join again, through a sign-up form.", "email")
        if status == "subscribed":
            return Added(known.id, known.email, False, False)
    with write():
        saved = store.save(address, {}, origin=f"admin:{by}")
        joined, _ = store.subscribe_confirmed([saved.id], slug, source=f"admin:{by}")
    contact = db.session.get(Contact, saved.id)
    return Added(saved.id, contact.email if contact else address, saved.created, bool(joined))


def remove(contact_id: int, slug: str) -> bool:
    """Take one person off a list (inside or outside a `write()`): the subscription is kept as
    `unsubscribed` (a `list_left` event), so nobody can put them back but themselves. False when
    they were not on it."""
    with write():
        return bool(store.unsubscribe(contact_id, [slug]))


@dataclass
class ListOutcome:
    """What an import did to one list: who joined, who was on it already, and who was left
    off because they had unsubscribed from it or withdrawn their consent (their addresses, to
    say so)."""

    joined: int = 0
    already: int = 0
    refused: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ListImport:
    """An import's lists: every contact imported joins each, as subscribed, with `source`
    (e.g. `import:people.csv`); `consent` (from `service.consent_values`) is their proof of
    consent where none is recorded yet, for those who end up on at least one of the lists."""

    lists: tuple[str, ...]
    source: str
    consent: Mapping[str, Any] | None = None


def import_plan(file_name: str, slugs: Iterable[str], *, by: str) -> ListImport | None:
    """The lists an import of the file `file_name` joins (slugs the caller checked), with the
    consent proof it records: which file, when, and who imported it (`by`). None without lists:
    a plain import records no consent."""
    wanted = tuple(dict.fromkeys(slugs))
    if not wanted:
        return None
    name = file_name[:100]
    text = (f"Imported from {name} on {utcnow():%Y-%m-%d} by {by}, subscribed to "
            f"{', '.join(wanted)}.")
    return ListImport(wanted, f"import:{name}",
                      consent_values(form=f"import:{name}", ip="", text=text))


def people_of(contacts: Mapping[str, Contact]) -> dict[str, int]:
    """`{email in the file: id of the person}` of existing contacts an import touches: a
    merged contact stands for the one it was merged into; an erased one for nobody."""
    ids = {}
    for email, contact in contacts.items():
        if contact.merged_into_id is None and contact.status != "erased":
            ids[email] = contact.id
        elif contact.status != "erased" and (person := resolve(contact.id)) is not None:
            ids[email] = person.id
    return ids


def join(plan: ListImport, people: Mapping[str, int], new: set[int],
         outcomes: dict[str, ListOutcome]) -> None:
    """Put one chunk of an import on the plan's lists (inside its `write()`): one upsert per
    list, then consent for all of them but those refused by every list. `people`: `{email:
    contact id}`; `new`: the ids created by this import (their consent was set as they were
    inserted)."""
    emails = {contact_id: email for email, contact_id in people.items()}
    ids = sorted(emails)
    refused_by_all: set[int] | None = None
    for slug in plan.lists:
        joined, refused = store.subscribe_confirmed(ids, slug, source=plan.source)
        outcome = outcomes.setdefault(slug, ListOutcome())
        outcome.joined += len(joined)
        outcome.already += len(ids) - len(joined) - len(refused)
        outcome.refused += [emails[c] for c in refused]
        refused_by_all = set(refused) if refused_by_all is None else refused_by_all & set(refused)
    if plan.consent is not None:
        store.grant_consent_many(set(ids) - new - (refused_by_all or set()), plan.consent)


def preview(plan: ListImport, people: Mapping[str, int], new: int,
            outcomes: dict[str, ListOutcome]) -> None:
    """What `join` would do to a chunk, writing nothing (an import's dry run). `people`: the
    existing contacts; `new`: how many would be created (each would join every list)."""
    emails = {contact_id: email for email, contact_id in people.items()}
    ids = sorted(emails)
    said_no = set(store.withdrawn(ids))
    for slug in plan.lists:
        statuses: dict[int, str] = dict.fromkeys(said_no, "unsubscribed")
        for start in range(0, len(ids), 900):
            statuses.update(db.session.execute(select(
                Subscription.contact_id, Subscription.status).where(
                Subscription.list_slug == slug, Subscription.contact_id.not_in(said_no),
                Subscription.contact_id.in_(ids[start:start + 900]))).all())
        outcome = outcomes.setdefault(slug, ListOutcome())
        outcome.already += sum(1 for s in statuses.values() if s == "subscribed")
        outcome.refused += [emails[c] for c, s in statuses.items() if s == "unsubscribed"]
        outcome.joined += new + sum(1 for c in ids if statuses.get(c, "pending") == "pending")
