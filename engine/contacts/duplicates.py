"""Possible duplicates of a contact: people who look like the same person.

Shown on the contact page with a "Merge" action (`engine.contacts.merge`), so every suggestion
is a handful of indexed lookups, never a scan of all contacts:
- the same first and last name at the same company (the lower(name) indexes);
- the same address but for the domain (jan@acme.com, jan@gmail.com: a range of the unique
  email index on "jan@");
- Gmail's equivalents: dots and a `+tag` in the local part reach the same mailbox
  (j.an+news@gmail.com is jan@gmail.com): the plain address and the `+tag` range are looked up;
- a one-character typo after the first half of the address (jan.kowalsky@ vs jan.kowalski@):
  a bounded range of the email index on that first half, compared in Python.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, func, select

from engine.contacts.models import Contact
from engine.db import db

GMAIL = ("gmail.com", "googlemail.com")
# Role addresses shared by many people: the same local part at another domain means nothing.
GENERIC = frozenset({"info", "contact", "hello", "admin", "sales", "support", "office", "mail",
                     "team", "marketing", "billing", "noreply", "no-reply", "enquiries", "hi"})
TYPO_RANGE = 200  # addresses compared for a typo, at most
LIMIT = 10


@dataclass(frozen=True)
class Suggestion:
    contact: Contact
    reason: str


def _range(start: str) -> object:
    return and_(Contact.email >= start, Contact.email < start + "\U0010ffff")


def _active(*conditions: object, limit: int = LIMIT) -> list[Contact]:
    return list(db.session.scalars(select(Contact).where(Contact.status == "active", *conditions)
                                   .order_by(Contact.email).limit(limit)))


def gmail_base(email: str) -> str:
    """The mailbox a Gmail address reaches (no dots, no +tag), or "" for other domains."""
    local, _, domain = email.partition("@")
    if domain not in GMAIL:
        return ""
    return local.split("+", 1)[0].replace(".", "")


def one_edit_apart(a: str, b: str) -> bool:
    """Whether one insertion, deletion or substitution turns `a` into `b` (not equal)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i + (len(a) == len(b)):] == b[i + 1:]


def suggestions(contact: Contact) -> list[Suggestion]:
    """Active contacts that may be this one, each with why, strongest reasons first."""
    found: dict[int, Suggestion] = {}

    def add(rows: list[Contact], reason: str) -> None:
        for row in rows:
            if row.id != contact.id and row.id not in found:
                found[row.id] = Suggestion(row, reason)

    first, last = contact.first_name.strip().lower(), contact.last_name.strip().lower()
    if first and last and contact.company_id:
        add(_active(func.lower(Contact.first_name) == first,
                    func.lower(Contact.last_name) == last,
                    Contact.company_id == contact.company_id),
            "Same name and company")
    email = contact.email
    local, _, domain = email.partition("@")
    if not local or not domain:
        return list(found.values())
    base = gmail_base(email)
    if base:
        variants = [f"{base}@{d}" for d in GMAIL]
        add(_active(Contact.email.in_(variants)), "The same Gmail mailbox")
        for gmail in GMAIL:
            add(_active(_range(f"{base}+"), Contact.email.like(f"%@{gmail}")),
                "The same Gmail mailbox")
    if local.split("+", 1)[0] not in GENERIC and len(local) >= 3:
        add([row for row in _active(_range(f"{local}@"))
             if row.email.partition("@")[2] != domain], "Same address at another domain")
    head = email[:max(3, len(local) // 2)]
    add([row for row in _active(_range(head), limit=TYPO_RANGE)
         if one_edit_apart(row.email, email)], "Address one character apart")
    return list(found.values())[:LIMIT]
