"""Campaigns in words, for the list, the editor, the send confirmation and a campaign's page:
its audience, when it goes, its A/B test and what goes out each read as plain lines (never
markup: templates escape them)."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from engine.db import db
from engine.mail.compose import named_sender
from engine.mail.models import EmailTemplate
from engine.segments.models import Segment
from plugins.newsletters import abtest, service
from plugins.newsletters.models import Campaign

STATUS = {"draft": "Draft", "scheduled": "Scheduled", "sending": "Sending", "paused": "Paused",
          "sent": "Sent", "cancelled": "Cancelled"}
AB_FIELDS = {"subject": "Subject", "from_name": "From name", "content": "Content"}


def segment_names(ids: Any = None) -> dict[int, str]:
    """Segment names by id (all of them, or these), for many campaigns at once."""
    query = select(Segment.id, Segment.name)
    if ids is not None:
        query = query.where(Segment.id.in_(list(ids)))
    return dict(db.session.execute(query).all())


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _part(slugs: list[str], ids: list[int], names: dict[int, str]) -> str:
    parts = []
    if slugs:
        parts.append(("list " if len(slugs) == 1 else "lists ") + _join(slugs))
    if ids:
        shown = [f"“{names[i]}”" if i in names else "a deleted segment" for i in ids]
        parts.append(("segment " if len(ids) == 1 else "segments ") + _join(shown))
    return " and ".join(parts)


def audience(chosen: dict[str, Any], names: dict[int, str]) -> str:
    """'lists news and offers, segment “UK VIPs”, except list staff'."""
    wanted = _part(chosen.get("lists") or [], chosen.get("segments") or [], names)
    if not wanted:
        return "Nobody chosen yet"
    left_out = _part(chosen.get("exclude_lists") or [], chosen.get("exclude_segments") or [],
                     names)
    return wanted[0].upper() + wanted[1:] + (f", except {left_out}" if left_out else "")


def local(moment: datetime | None, zone: ZoneInfo) -> str:
    """A moment on the site's clock, with the zone named: '5 Dec 2025, 09:00 (Europe/Paris)'."""
    if moment is None:
        return "—"
    return f"{moment.astimezone(zone):%-d %b %Y, %H:%M} ({zone.key})"


def timing(campaign: Campaign, zone: ZoneInfo) -> str:
    if campaign.timing == "at":
        return f"At {local(campaign.send_at, zone)}" if campaign.send_at else "At a time"
    if campaign.timing == "local":
        return f"At {campaign.local_time} in each recipient's time zone, over 24 hours"
    if campaign.timing == "best":
        return (f"At each recipient's usual hour of reading, within {campaign.window_hours} "
                "hours (others when it starts)")
    return "As soon as it is sent"


def ab(campaign: Campaign) -> str:
    """'Subject test of 2 variants on 20% of the audience; after 4 hours the one with the
    better click rate goes to the rest if it is the best with 90% probability (with fewer than
    100 sent to each, or less certainty, variant A does).'"""
    test = campaign.ab or {}
    if not test:
        return "No A/B test"
    metric = abtest.METRICS.get(test["metric"], test["metric"])
    if test["metric"] == "conversions":
        metric += f" (“{test['form']}” within {test['days']} days)"
    fallback = ("nothing more is sent" if test["fallback"] == "none"
                else f"variant {test['fallback'].upper()} does")
    hours = test["wait_hours"]
    return (f"{AB_FIELDS.get(test['field'], test['field'])} test of {len(test['variants'])} "
            f"variants on {test['share']}% of the audience; after {hours} "
            f"hour{'' if hours == 1 else 's'} the one with the better {metric} goes to the rest "
            f"if it is the best with {test.get('confidence', 90)}% probability (with fewer than "
            f"{test['min_sample']} sent to each, or less certainty, {fallback}).")


def outgoing(campaign: Campaign, site_sender: str) -> list[tuple[str, list[str]]]:
    """What goes out, as (label, lines): the email, subject, from name and preheader, each
    once when every variant shares it, else one line per variant ('Variant B: …'); blanks
    read as the template's or the site's, and the sender as its From header will be."""
    rows: dict[str, list[tuple[str, str]]] = {"Email": [], "Subject": [], "From": []}
    for variant in service.variants(campaign):
        template = (db.session.get(EmailTemplate, variant.template_id)
                    if variant.template_id else None)
        rows["Email"].append((variant.key, template.name if template else "none chosen"))
        rows["Subject"].append((variant.key, variant.subject or (
            f"{template.subject} (the template's)" if template else "the template's")))
        rows["From"].append((variant.key, named_sender(variant.from_name)
                             if variant.from_name else site_sender))
    first = db.session.get(EmailTemplate, campaign.template_id) if campaign.template_id \
        else None
    preheader = campaign.preheader or (
        f"{first.preheader} (the template's)" if first and first.preheader else "None")
    shown = [(label, [text for _, text in pairs][:1] if len({t for _, t in pairs}) == 1
              else [f"Variant {key.upper()}: {text}" for key, text in pairs])
             for label, pairs in rows.items()]
    return shown + [("Preheader", [preheader])]
