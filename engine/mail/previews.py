"""Whom an editor's preview or test email is personalised for, and with which values: shared by
the mail template editor and every plugin that previews mail (campaigns).

A preview is rendered for a contact picked by address, else for a sample contact; its
unsubscribe and preference links go nowhere that acts (`links`: "#" in a preview, the site's
home page in a test), so trying one unsubscribes nobody.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine.contacts.models import Contact
from engine.contacts.service import ContactError, find_by_email, normalise_email
from engine.db import db
from engine.mail import rendering

RECENT_CONTACTS = 20  # addresses offered to pick from
SAMPLE = "a sample contact (Alex Example, with example values)"


def contact_asked_for(typed: str) -> tuple[Contact | None, str, str]:
    """(the contact with this address, the address as typed, a note when there is none)."""
    typed = (typed or "").strip()[:320]
    if not typed:
        return None, "", ""
    try:
        contact = find_by_email(normalise_email(typed))
    except ContactError:
        return None, typed, f"“{typed}” is not an email address: showing a sample contact."
    if contact is None or contact.status != "active":
        return None, typed, f"No contact has the address {typed}: showing a sample contact."
    return contact, typed, ""


def values_for(contact: Contact | None, links: str) -> tuple[dict[str, Any], str]:
    """The values a preview or test is rendered with, and whom they are for, in words."""
    if contact is not None:
        values = rendering.contact_values(contact)
        who = f"{contact.name} <{contact.email}>" if contact.name else contact.email
    else:
        values, who = rendering.sample_values(), SAMPLE
    values |= rendering.site_values()
    return values | {"unsubscribe_url": links, "preferences_url": links}, who


def recent_contacts() -> list[Contact]:
    return list(db.session.scalars(select(Contact).where(Contact.status == "active")
                                   .order_by(Contact.id.desc()).limit(RECENT_CONTACTS)))


def framed(html: str) -> str:
    """A rendered email for a preview frame: its links open in a new tab (the sandboxed
    frame may not navigate itself)."""
    return html.replace("<head>", '<head><base target="_blank">', 1)
