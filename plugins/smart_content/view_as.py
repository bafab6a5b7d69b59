""""View as": a page as a chosen visitor (UTM, country, language, device...) or a chosen contact.

The page is rendered for the editor only, never cached (`Cache-Control: no-store`), with the
shortcode reading the forced context from `g.smart_view_as` instead of the request. A contact's
profile is built from the database here (an editor's preview, not the hot path).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from flask import g, make_response
from sqlalchemy import select

from engine.contacts.models import LIFECYCLE_STAGES, Contact, Subscription
from engine.content import service as content
from engine.content.models import ContentItem
from engine.content.views import show_item
from engine.db import db
from engine.segments.models import Segment
from plugins.smart_content import blocks, profiles
from plugins.smart_content.placing import content_of
from plugins.smart_content.rules import Context, choose


@dataclass
class Asked:
    page: str = ""  # "page:slug" or "post:slug"
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    first_utm_source: str = ""
    referrer_type: str = "none"
    referrer_domain: str = ""
    language: str = ""
    country: str = ""
    device: str = "desktop"
    visitor: str = "new"
    pages_seen: str = "0"
    query: str = ""  # name=value&name2=value2
    email: str = ""
    stage: str = ""
    segment: str = ""
    list: str = ""

    @classmethod
    def from_args(cls, args: Any) -> Asked:
        return cls(**{f.name: str(args.get(f.name, f.default))[:200].strip()
                      for f in fields(cls)})

    def as_args(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


def _profile(asked: Asked) -> tuple[dict[str, Any] | None, str]:
    """The profile rules will read, and a note for the editor (e.g. an unknown address)."""
    if asked.email:
        contact = db.session.scalar(select(Contact).where(
            Contact.email == asked.email.lower(), Contact.status == "active"))
        if contact is None:
            return None, f"No contact has the address {asked.email}: shown as an unknown visitor."
        return profiles.build(contact), f"Shown as {contact.email}, as on a trusted browser."
    if asked.stage or asked.segment or asked.list:
        return {"stage": asked.stage or "subscriber", "lists": [asked.list] if asked.list else [],
                "segments": [int(asked.segment)] if asked.segment.isdigit() else [],
                "company": "", "score": None, "fields": {}}, "Shown as a known contact."
    return None, ""


def context(asked: Asked) -> tuple[Context, str]:
    query = {}
    for pair in asked.query.split("&"):
        name, _, value = pair.partition("=")
        if name.strip():
            query[name.strip()] = value.strip()
    try:
        pages = max(0, int(asked.pages_seen or 0))
    except ValueError:
        pages = 0
    profile, note = _profile(asked)
    return Context(
        utm={"source": asked.utm_source, "medium": asked.utm_medium,
             "campaign": asked.utm_campaign},
        first_utm={"source": asked.first_utm_source or asked.utm_source},
        referrer_type=asked.referrer_type, referrer_domain=asked.referrer_domain.lower(),
        languages=tuple(x.strip().lower() for x in asked.language.split(",") if x.strip()),
        country=asked.country.upper(), device=asked.device, query=query,
        returning=asked.visitor == "returning", pages_seen=pages, profile=profile), note


def _item(asked: Asked) -> ContentItem | None:
    kind, _, slug = asked.page.partition(":")
    return content.visible_item(kind, slug) if kind in ("page", "post") and slug else None


def summary(asked: Asked) -> dict[str, Any] | None:
    """Which variant each block of the page shows to the chosen visitor."""
    item = _item(asked)
    if item is None:
        return None
    ctx, note = context(asked)
    known = blocks.all_blocks()
    shown = []
    for slug in blocks.slugs_of(item):
        block = known.get(slug)
        if block is None:
            shown.append({"slug": slug, "name": "(no such block)", "variant": "—", "text": ""})
            continue
        index = choose(list(block.variants), ctx)
        shown.append({"slug": slug, "name": block.name,
                      "variant": "Default" if index < 0 else
                      block.variants[index].get("name") or f"Variant {index + 1}",
                      "text": content_of(block, index)[:200]})
    return {"item": item, "blocks": shown, "note": note}


def choices() -> dict[str, Any]:
    """What the form's menus offer."""
    pages = db.session.execute(select(ContentItem.kind, ContentItem.slug, ContentItem.title)
                               .where(ContentItem.kind.in_(("page", "post")),
                                      ContentItem.deleted_at.is_(None))
                               .order_by(ContentItem.kind, ContentItem.title)).all()
    return {"pages": [(f"{k}:{s}", f"{t} ({'/' if s == 'home' else s})") for k, s, t in pages],
            "stages": LIFECYCLE_STAGES,
            "segments": db.session.execute(select(Segment.id, Segment.name)
                                           .order_by(Segment.name)).all(),
            "lists": sorted(set(db.session.scalars(select(Subscription.list_slug).distinct())))}


def render_page(asked: Asked) -> Any:
    """The themed page as the chosen visitor sees it (for the editor only: not stored)."""
    item = _item(asked)
    if item is None:
        return None
    g.smart_view_as, _note = context(asked)
    response = make_response(show_item(item))
    response.headers["Cache-Control"] = "no-store"
    return response
