"""The event stream as a built-in plugin: its sweep, and the event types the engine records.

Each concern records its own events through `engine.events.record`; the types it records are
declared here in one list so that a reader (and the admin's pickers) sees every type the engine
itself produces. Plugins declare theirs with the same hook.
"""
from __future__ import annotations

from typing import Any

from engine.events import delivery
from engine.events.types import EventType, PropertyType
from engine.plugins import hookimpl

S, N, B = PropertyType.STRING, PropertyType.NUMBER, PropertyType.BOOLEAN

ENGINE_TYPES = [
    EventType("form_submitted", "Submitted a form", {"form": S, "submission_id": N},
              sentence="Submitted {form:file} form", links_page=True),
    EventType("asset_downloaded", "Downloaded a gated asset", {"asset": S, "submission_id": N},
              sentence="Downloaded {asset:file}"),
    EventType("subscription_confirmed", "Confirmed a subscription", {"list": S},
              sentence="Confirmed subscription to list {list}"),
    EventType("contact_created", "Became a contact", {"source": S},
              sentence="Became a contact (from {source})"),
    EventType("field_changed", "Changed a contact field", {"field": S, "old": S, "new": S},
              sentence="{field:file} changed"),
    EventType("tag_added", "Was tagged", {"tag": S}, sentence="Tag {tag} added"),
    EventType("tag_removed", "Lost a tag", {"tag": S}, sentence="Tag {tag} removed"),
    EventType("list_joined", "Joined a list", {"list": S, "status": S},
              sentence="Joined list {list}"),
    EventType("list_left", "Left a list", {"list": S, "status": S},
              sentence="Left list {list}"),
    EventType("stage_changed", "Changed lifecycle stage", {"old": S, "new": S},
              sentence="Stage changed from {old} to {new}"),
    EventType("note_added", "Had a note written about them", {"note_id": N, "by": S},
              sentence="Note written by {by}"),
    EventType("contact_merged", "Had a duplicate merged in", {"merged": N, "by": S}),
    EventType("merge_undone", "Had a merge undone", {"restored": N, "by": S}),
    EventType("visitor_identified", "Was recognised on a browser", {"events": N}),
    EventType("contact_erased", "Was erased (GDPR)", {"by": S}),
    EventType("segment_entered", "Entered a segment", {"segment": S, "segment_id": N},
              sentence="Entered segment {segment}"),
    EventType("segment_left", "Left a segment", {"segment": S, "segment_id": N},
              sentence="Left segment {segment}"),
    EventType("email_sent", "Was sent an email",
              {"subject": S, "message_id": S, "mailing": S, "mailing_id": N},
              sentence="Was sent “{subject|mailing}”"),
    # Reported by the receiving side: an ESP's webhook, a bounce or a complaint (engine/mail).
    EventType("email_delivered", "Had an email delivered", {"mailing": S, "mailing_id": N}),
    EventType("email_opened", "Opened an email",
              {"mailing": S, "mailing_id": N, "subject": S, "machine": B},
              sentence="Opened “{subject|mailing}” email"),
    EventType("email_clicked", "Clicked a link in an email",
              {"mailing": S, "mailing_id": N, "subject": S, "url": S, "machine": B},
              sentence="Clicked a link in “{subject|mailing}”"),
    EventType("email_bounced", "Had an email bounce",
              {"mailing": S, "mailing_id": N, "kind": S, "diagnostic": S}),
    EventType("email_complained", "Marked an email as spam", {"mailing": S, "mailing_id": N},
              sentence="Marked “{mailing}” as spam"),
    EventType("email_unsubscribed", "Unsubscribed from email",
              {"mailing": S, "mailing_id": N, "list": S, "how": S},
              sentence="Unsubscribed from {list|mailing}"),
    # Sent from outside by shops and CRMs (`POST /api/v1/events`, `magnet events record`).
    EventType("purchase", "Made a purchase",
              {"order_id": S, "amount": N, "currency": S, "product": S}, external=True),
    EventType("cart_abandoned", "Abandoned a cart",
              {"cart_id": S, "amount": N, "currency": S, "url": S}, external=True),
    EventType("deal_won", "Won as a deal", {"deal_id": S, "amount": N, "currency": S},
              external=True),
]


@hookimpl
def register_event_types() -> list[Any]:
    return ENGINE_TYPES


@hookimpl
def register_jobs() -> list[Any]:
    return [delivery.sweep]
