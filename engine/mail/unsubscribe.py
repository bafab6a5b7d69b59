"""Unsubscribing: the headers every marketing email carries, and what an unsubscribe does.

RFC 8058 one-click: `List-Unsubscribe` names an HTTPS URL (and a mailto address for clients
that only know that) and `List-Unsubscribe-Post: List-Unsubscribe=One-Click` tells the mailbox
provider it may POST to it, without cookies, and expect the person gone. Both headers are in
the DKIM signature (see `engine.mail.dkim`), as Gmail and Yahoo require.

An unsubscribe from an email sent to a list takes the person off that list; from an email sent
to a segment or by a workflow (no list), it puts the address on the suppression list for
marketing. Either way it is honoured at once: the next batch that reaches them skips them.
"""
from __future__ import annotations

import re

from sqlalchemy import select

from engine import events
from engine.contacts import identity, store
from engine.contacts.models import Subscription
from engine.db import db
from engine.mail import suppression, tokens
from engine.mail.models import Mailing, MailSend

ONE_CLICK = "List-Unsubscribe=One-Click"


def list_id(mailing: Mailing) -> str:
    """`List-Id` (RFC 2919): the list, or "marketing" for mail to a segment, in our domain."""
    name = re.sub(r"[^a-z0-9-]+", "-", (mailing.list_slug or "marketing").lower()).strip("-")
    return f"<{name or 'marketing'}.{tokens.bounce_domain()}>"


def list_headers(contact_id: int, send_id: int | None, mailing: Mailing,
                 https: str | None = None) -> dict[str, str]:
    """The unsubscribe headers of one recipient's copy of a marketing mailing (`https`: its
    unsubscribe URL, when the caller made it already)."""
    https = https or tokens.unsubscribe_url(contact_id, send_id)
    mailto = tokens.bounce_address("s", send_id) if send_id else None
    value = f"<{https}>" + (f", <mailto:{mailto}?subject=unsubscribe>" if mailto else "")
    return {"List-Unsubscribe": value, "List-Unsubscribe-Post": ONE_CLICK,
            "List-Id": list_id(mailing)}


def apply_unsubscribe(contact_id: int, send_id: int | None, *, how: str) -> bool:
    """Unsubscribe the recipient of a send (inside `write()`): off the mailing's list, or off
    all marketing when it had none. `how`: "one-click", "link", "mailto", "preferences".
    Returns False when there was nothing left to do (already unsubscribed), so a provider's
    retried POST or a scanner's repeat records nothing twice. A contact merged since the email
    was sent is the person it was merged into: they are the one unsubscribed."""
    contact = identity.resolve(contact_id)
    if contact is None:
        return False
    mailing = mailing_of(contact_id, send_id)
    slug = mailing.list_slug if mailing is not None else ""
    if slug:
        changed = bool(store.unsubscribe(contact.id, [slug]))
    else:
        was = suppression.entry(contact.email)
        already = was is not None and was.expires_at is None
        suppression.suppress(contact.email, "unsubscribed", note=f"by {how}")
        store.unsubscribe(contact.id)
        changed = not already
    if changed:
        record_unsubscribed(contact.id, mailing, slug, how)
    return changed


def mailing_of(contact_id: int, send_id: int | None) -> Mailing | None:
    """The mailing a recipient token's send belongs to, when that send went to this contact."""
    if send_id is None:
        return None
    send = db.session.get(MailSend, send_id)
    if send is None or send.contact_id != contact_id:
        return None
    return db.session.get(Mailing, send.mailing_id)


def record_unsubscribed(contact_id: int, mailing: Mailing | None, slug: str, how: str) -> None:
    events.record("email_unsubscribed", contact_id=contact_id, properties={
        "mailing": mailing.key if mailing else "", "mailing_id": mailing.id if mailing else 0,
        "list": slug, "how": how})


def subscribed_lists(contact_id: int) -> list[str]:
    return list(db.session.scalars(select(Subscription.list_slug).where(
        Subscription.contact_id == contact_id, Subscription.status == "subscribed")
        .order_by(Subscription.list_slug)))
