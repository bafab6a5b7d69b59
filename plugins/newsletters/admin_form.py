"""The campaign editor's form: the flat values it shows (from a campaign, from defaults or as
posted), what a posted form means for `service.save`, and the choices it offers.

One flat shape (`Draft`, a dict of strings and sets) serves all three, so a form saved without
a change turns back into exactly what was stored: times are shown on the site's clock
(`datetime-local` in the site's time zone) and read back on it, to the second when stored so.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import abort
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from engine.contacts.models import Subscription
from engine.contacts.timezones import UTC, site_zone
from engine.db import db
from engine.forms.models import Form
from engine.mail.models import EmailTemplate
from engine.segments.models import Segment, SegmentMember
from plugins.newsletters import audience
from plugins.newsletters.errors import CampaignError
from plugins.newsletters.fields import VARIANT_KEYS
from plugins.newsletters.models import Campaign

Draft = dict[str, Any]
TEXTS = ("name", "template_id", "subject", "preheader", "from_name", "timing", "send_at",
         "local_time", "window_hours", "conversion_form", "conversion_days", "utm_campaign",
         "ab_field", "ab_share", "ab_metric", "ab_form", "ab_days", "ab_wait_hours",
         "ab_min_sample", "ab_confidence", "ab_fallback")
VARIANT_FIELDS = ("subject", "from_name", "template_id")
AB_DEFAULTS = {"ab_share": "20", "ab_metric": "clicks", "ab_form": "", "ab_days": "7",
               "ab_wait_hours": "4", "ab_min_sample": "100", "ab_confidence": "90",
               "ab_fallback": "a"}


def campaign_or_404(campaign_id: int) -> Campaign:
    return db.get_or_404(Campaign, campaign_id)


# -- times on the site's clock --------------------------------------------------------------------

def local_input(moment: datetime | None, zone: ZoneInfo) -> str:
    """A stored moment as a `datetime-local` value on the site's clock."""
    if moment is None:
        return ""
    shown = moment.astimezone(zone)
    return f"{shown:%Y-%m-%dT%H:%M:%S}" if shown.second else f"{shown:%Y-%m-%dT%H:%M}"


def read_local(text: str, zone: ZoneInfo) -> datetime | None:
    """A `datetime-local` value, read on the site's clock, as a UTC moment."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CampaignError("Give the time as a date and a time of day, for example "
                            "2025-12-05 09:00.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


# -- the flat values ------------------------------------------------------------------------------

def _blank_variants() -> list[dict[str, str]]:
    return [dict.fromkeys(VARIANT_FIELDS, "") for _ in VARIANT_KEYS]


def defaults() -> Draft:
    draft: Draft = dict.fromkeys(TEXTS, "")
    draft.update(timing="now", local_time="09:00", window_hours="24", conversion_days="7",
                 **AB_DEFAULTS)
    draft.update({key: set() for key in audience.KEYS})
    draft.update(public=False, variants=_blank_variants())
    return draft


def shown(campaign: Campaign, zone: ZoneInfo) -> Draft:
    """What the form shows for a stored campaign."""
    draft = defaults()
    for name in ("name", "subject", "preheader", "from_name", "timing", "local_time",
                 "conversion_form", "utm_campaign"):
        draft[name] = getattr(campaign, name) or ""
    draft["template_id"] = str(campaign.template_id or "")
    draft["window_hours"] = str(campaign.window_hours)
    draft["conversion_days"] = str(campaign.conversion_days)
    draft["send_at"] = local_input(campaign.send_at, zone)
    draft["public"] = bool(campaign.public)
    for key in audience.KEYS:
        draft[key] = {str(v) for v in (campaign.audience or {}).get(key) or []}
    test = campaign.ab or {}
    if test:
        draft["ab_field"] = test["field"]
        for name in AB_DEFAULTS:
            draft[name] = str(test.get(name[3:], ""))
        for index, variant in enumerate(test["variants"][:3]):
            draft["variants"][index] = {name: str(variant.get(name) or "")
                                        for name in VARIANT_FIELDS}
    return draft


def posted(form: MultiDict[str, str]) -> Draft:
    """The form as sent, to show again (after an error or for a preview) and to save."""
    draft = defaults()
    for name in TEXTS:
        draft[name] = (form.get(name) or "").strip()
    for key in audience.KEYS:
        draft[key] = {v for v in form.getlist(key) if v}
    draft["public"] = bool(form.get("public"))
    draft["variants"] = [{name: (form.get(f"ab_{key}_{name}") or "").strip()
                          for name in VARIANT_FIELDS} for key in VARIANT_KEYS]
    return draft


def values(draft: Draft, zone: ZoneInfo) -> dict[str, Any]:
    """What `service.save` takes, from the flat values; a time that cannot be read is refused
    here (`CampaignError`), everything else by the service."""
    found: dict[str, Any] = {name: draft[name] for name in (
        "name", "template_id", "subject", "preheader", "from_name", "timing", "local_time",
        "window_hours", "conversion_form", "conversion_days", "public", "utm_campaign")}
    found["send_at"] = read_local(draft["send_at"], zone)
    if draft["timing"] == "at" and found["send_at"] is None:
        raise CampaignError("Choose the date and time to send it at.")
    found["audience"] = {key: sorted(draft[key]) for key in audience.KEYS}
    found["ab"] = _ab(draft)
    return found


def _ab(draft: Draft) -> dict[str, Any]:
    field = draft["ab_field"]
    if not field:
        return {}
    column = {"subject": "subject", "from_name": "from_name"}.get(field, "template_id")
    variants = list(draft["variants"][:2])
    if draft["variants"][2][column]:  # a third variant only when it is filled in
        variants.append(draft["variants"][2])
    return {"field": field, "variants": variants,
            **{name[3:]: draft[name] for name in AB_DEFAULTS}}


def changed(campaign: Campaign, fields: dict[str, Any]) -> list[str]:
    """The names of the cleaned fields that differ from what is stored."""
    return [name for name, value in fields.items() if getattr(campaign, name) != value]


# -- choices --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Choices:
    templates: list[EmailTemplate]  # marketing templates
    lists: list[tuple[str, int]]  # (slug, subscribed members)
    segments: list[tuple[Segment, int]]  # (segment, members now)
    forms: list[tuple[str, str]]  # (slug, title)
    zone: ZoneInfo


def choices(draft: Draft) -> Choices:
    """What the form offers, with what the draft names already kept among them (a list with
    nobody on it any more still shows, ticked)."""
    templates = list(db.session.scalars(select(EmailTemplate).where(
        EmailTemplate.kind == "marketing").order_by(func.lower(EmailTemplate.name))))
    members = dict(db.session.execute(
        select(Subscription.list_slug, func.count()).where(Subscription.status == "subscribed")
        .group_by(Subscription.list_slug)).all())
    known = set(db.session.scalars(select(Subscription.list_slug).distinct()))
    named = draft["lists"] | draft["exclude_lists"]
    lists = [(slug, members.get(slug, 0)) for slug in sorted(known | named)]
    sizes = dict(db.session.execute(select(SegmentMember.segment_id, func.count())
                                    .group_by(SegmentMember.segment_id)).all())
    segments = [(s, sizes.get(s.id, 0)) for s in db.session.scalars(
        select(Segment).order_by(func.lower(Segment.name)))]
    forms = list(db.session.execute(select(Form.slug, Form.title).order_by(Form.title)).all())
    slugs = {slug for slug, _ in forms}
    forms += [(slug, slug) for slug in {draft["conversion_form"], draft["ab_form"]} - slugs
              if slug]
    return Choices(templates, lists, segments, [tuple(f) for f in forms], site_zone())


def template_or_none(template_id: Any) -> EmailTemplate | None:
    try:
        return db.session.get(EmailTemplate, int(template_id)) if template_id else None
    except (TypeError, ValueError):
        abort(400)
