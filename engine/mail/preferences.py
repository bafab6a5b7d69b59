"""What a recipient may change about the email they get, and what a new opt-in undoes.

The preference page (`engine.mail.views.unsubscribe`) works on a contact named by a signed
recipient token; these functions hold its rules so the page stays thin:
- leaving a list keeps the row as `unsubscribed`; joining again is a new sign-up that must be
  confirmed (the page never re-subscribes anyone: a forwarded email must not let a stranger
  sign someone up again);
- a pause is a `paused` suppression that ends by itself after `PAUSE`;
- "unsubscribe from all" is an `unsubscribed` suppression (marketing scope) and leaves every
  list;
- resuming lifts only what the person set themselves (`unsubscribed`, `paused`), never a hard
  bounce, a complaint or an address the owner put on the list.

A person who unsubscribed and later confirms a subscription (or joins a list with no double
opt-in) asked for mail again: `lift_on_opt_in` (mail's `on_event`) lifts their unsubscribe or
pause, but only one older than that opt-in, since events reach `on_event` after the fact and an
unsubscribe made since must win.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from engine.contacts import identity, store
from engine.contacts.models import Contact, Subscription
from engine.db import db, utcnow
from engine.mail import suppression
from engine.mail.models import Mailing
from engine.mail.unsubscribe import record_unsubscribed

log = logging.getLogger("magnet.mail")

PAUSE = timedelta(days=30)
# What the person set, so what a new confirmed opt-in lifts; the preference page's "Resume"
# lifts only a pause (whoever holds a forwarded email's link must not sign someone up again).
RESUMABLE = ("unsubscribed", "paused")
OPT_IN_EVENTS = ("subscription_confirmed",)


@dataclass(frozen=True)
class Standing:
    """Whether marketing email reaches the person: `state` is "receiving", "paused" (until
    `until`), "unsubscribed" (from all marketing) or "blocked" (a bounce, a complaint, the
    owner's list: not theirs to lift)."""

    state: str
    until: datetime | None = None


def standing(contact: Contact) -> Standing:
    row = suppression.entry(contact.email)
    if row is None or (row.expires_at is not None and row.expires_at <= utcnow()):
        return Standing("receiving")
    if row.reason == "paused":
        return Standing("paused", row.expires_at)
    if row.reason == "unsubscribed":
        return Standing("unsubscribed")
    return Standing("blocked")


def subscriptions(contact_id: int) -> list[Subscription]:
    """The contact's lists, whatever their status, by name."""
    return list(db.session.scalars(select(Subscription).where(
        Subscription.contact_id == contact_id).order_by(Subscription.list_slug)))


def leave(contact: Contact, slugs: list[str], mailing: Mailing | None = None) -> list[str]:
    """Take the person off these lists (inside `write()`); returns the lists left, each an
    `email_unsubscribed` event (how "preferences")."""
    left = store.unsubscribe(contact.id, slugs) if slugs else []
    for slug in left:
        record_unsubscribed(contact.id, mailing, slug, "preferences")
    return left


def pause(contact: Contact) -> datetime:
    """No marketing email for `PAUSE` (inside `write()`); returns when it ends. A permanent
    entry stays permanent (`suppression.suppress` never weakens one)."""
    until = utcnow() + PAUSE
    suppression.suppress(contact.email, "paused", note="by preferences", expires_at=until)
    return until


def unsubscribe_all(contact: Contact, mailing: Mailing | None = None) -> bool:
    """Off all marketing and every list (inside `write()`); False when they already were."""
    was = suppression.entry(contact.email)
    already = was is not None and was.expires_at is None
    suppression.suppress(contact.email, "unsubscribed", note="by preferences")
    store.unsubscribe(contact.id)
    if not already:
        record_unsubscribed(contact.id, mailing, "", "preferences")
    return not already


def resume(contact: Contact) -> bool:
    """End the person's pause (inside `write()`); True when one was lifted. An unsubscribe is
    lifted only by a new sign-up the person confirms from their mailbox (`lift_on_opt_in`)."""
    return suppression.lift(contact.email, reasons=("paused",))


def lift_on_opt_in(events: list[dict[str, Any]]) -> int:
    """`on_event`: a subscription confirmed from the person's mailbox lifts their unsubscribe
    or pause made before it (inside the delivery's `write()`); a plain join does not, since
    anyone can type an address into a form. Returns how many were lifted."""
    lifted = 0
    for event in events:
        if not event.get("contact_id") or event["type"] not in OPT_IN_EVENTS:
            continue
        contact = identity.resolve(event["contact_id"])
        row = suppression.entry(contact.email) if contact is not None else None
        if row is None or row.reason not in RESUMABLE or row.created_at > event["occurred_at"]:
            continue
        if suppression.lift(contact.email, reasons=RESUMABLE):
            lifted += 1
            log.info("suppression (%s) of contact %s lifted by %s", row.reason, contact.id,
                     event["type"])
    return lifted
