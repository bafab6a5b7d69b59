"""Notes admin users write on a contact: shown on its page, each one a `note_added` event on the
timeline (the event names the note and its author, not its words, so a note deleted or
rewritten leaves no copy behind). A note of a contact merged into another shows on the
contact it joined; notes go with the person's data in a GDPR export and erasure."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine import events
from engine.contacts.models import Contact, ContactNote
from engine.contacts.store import ContactError
from engine.db import db, utcnow

MAX_NOTE = 10_000


def clean(body: str) -> str:
    text = (body or "").replace("\r\n", "\n").strip()
    if not text:
        raise ContactError("Write something in the note.", "body")
    if len(text) > MAX_NOTE:
        raise ContactError(f"A note holds at most {MAX_NOTE:,} characters.", "body")
    return text


def of(contact_ids: list[int]) -> list[ContactNote]:
    """The notes of a person (a contact and those merged into it), newest first."""
    return list(db.session.scalars(select(ContactNote).where(
        ContactNote.contact_id.in_(contact_ids))
        .order_by(ContactNote.created_at.desc(), ContactNote.id.desc())))


def add(contact: Contact, body: str, author: Any) -> ContactNote:
    """Write a note (inside `write()`); ContactError for an empty or oversized one."""
    note = ContactNote(contact_id=contact.id, author_id=getattr(author, "id", None),
                       author=str(getattr(author, "email", author))[:254], body=clean(body),
                       created_at=utcnow())
    db.session.add(note)
    db.session.flush()
    events.defer([{"type": "note_added", "contact_id": contact.id,
                   "properties": {"note_id": note.id, "by": note.author[:200]}}])
    return note


def may_change(note: ContactNote, user: Any) -> bool:
    """Its author may change or delete a note, and so may an owner."""
    return bool(user.can("owner") or (note.author_id is not None and note.author_id == user.id))


def edit(note: ContactNote, body: str) -> str:
    """Rewrite a note (inside `write()`); returns the former text. Check `clean(body)` against
    the note first: a note saved unchanged is not rewritten."""
    before, note.body, note.updated_at = note.body, clean(body), utcnow()
    return before
