"""What an editor or a script gives for a campaign, checked and cleaned before anything is
written: each problem is a `CampaignError` whose message is shown as it is."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.db import db
from engine.mail import rendering
from engine.mail.models import EmailTemplate
from plugins.newsletters import abtest, audience, timing
from plugins.newsletters.errors import CampaignError

VARIANT_KEYS = ("a", "b", "c")
AB_FIELDS = {"subject": "subject", "from_name": "from name", "content": "content"}


def _text(values: dict[str, Any], name: str, limit: int) -> str:
    return " ".join(str(values.get(name) or "").split())[:limit]


def _line(values: dict[str, Any], name: str, limit: int, label: str) -> str:
    """A subject or preheader: one line, and a template that compiles (it may hold
    `{{ contact.first_name }}`), checked now rather than failing every batch at send time."""
    text = _text(values, name, limit)
    if text:
        problems = rendering.validate(subject=text, preheader="", body="-", format="markdown")
        if problems:
            raise CampaignError(f"{label}: {problems[0].message}")
    return text


def _int(values: dict[str, Any], name: str, default: int, low: int, high: int,
         label: str) -> int:
    raw = values.get(name)
    if raw in (None, ""):
        return default
    try:
        number = int(raw)
    except (TypeError, ValueError):
        raise CampaignError(f"{label} must be a whole number.") from None
    if not low <= number <= high:
        raise CampaignError(f"{label} must be between {low} and {high}.")
    return number


def _template(template_id: Any, label: str = "The email") -> int | None:
    if template_id in (None, "", 0, "0"):
        return None
    try:
        found = db.session.get(EmailTemplate, int(template_id))
    except (TypeError, ValueError):
        found = None
    if found is None:
        raise CampaignError(f"{label}: there is no such email template.")
    if found.kind != "marketing":
        raise CampaignError(f"{label}: “{found.name}” is a transactional template; a campaign "
                            "is marketing mail (with an unsubscribe link).")
    return found.id


def _ab(raw: Any, timing_kind: str) -> dict[str, Any]:
    """An A/B test as stored, or {} for none."""
    if not isinstance(raw, dict) or not raw.get("field"):
        return {}
    field = raw["field"]
    if field not in AB_FIELDS:
        raise CampaignError("Test the subject, the from name or the content.")
    if timing_kind in ("local", "best"):
        raise CampaignError("An A/B test sends its test group first and the winner later, "
                            "so it cannot also send at each recipient's own hour. Choose "
                            "“now” or a time.")
    variants = []
    for index, given in enumerate((raw.get("variants") or [])[:3]):
        given = given if isinstance(given, dict) else {}
        key = VARIANT_KEYS[index]
        variant: dict[str, Any] = {"key": key}
        if field == "subject":
            variant["subject"] = _line(given, "subject", 400, f"Variant {key.upper()}'s subject")
            if not variant["subject"]:
                raise CampaignError(f"Variant {key.upper()} needs a subject.")
        elif field == "from_name":
            variant["from_name"] = _text(given, "from_name", 200)
            if not variant["from_name"]:
                raise CampaignError(f"Variant {key.upper()} needs a from name.")
        else:
            variant["template_id"] = _template(given.get("template_id"),
                                               f"Variant {key.upper()}")
            if variant["template_id"] is None:
                raise CampaignError(f"Variant {key.upper()} needs an email template.")
        variants.append(variant)
    if len(variants) < 2:
        raise CampaignError("An A/B test needs two or three variants.")
    metric = raw.get("metric") or "clicks"
    if metric not in abtest.METRICS:
        raise CampaignError("Pick the winner by clicks, opens or conversions.")
    form = _text(raw, "form", 100)
    if metric == "conversions" and not form:
        raise CampaignError("Choose the form whose submissions count as conversions.")
    fallback = str(raw.get("fallback") or "a")
    if fallback not in [v["key"] for v in variants] + ["none"]:
        raise CampaignError("The fallback is one of the variants, or sending nothing more.")
    return {"field": field, "variants": variants,
            "share": _int(raw, "share", 20, 2, 100, "The test share (%)"),
            "metric": metric, "form": form,
            "days": _int(raw, "days", 7, 1, 90, "Days for a conversion"),
            "wait_hours": _int(raw, "wait_hours", 4, 0, 24 * 14, "The wait (hours)"),
            "min_sample": _int(raw, "min_sample", 100, 1, 1_000_000, "The minimum sample"),
            "confidence": _int(raw, "confidence", 90, 50, 99, "The confidence (%)"),
            "fallback": fallback}


def _moment(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise CampaignError("A time needs its time zone.")
        return value
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise CampaignError("Give the time as YYYY-MM-DD HH:MM.") from None
    if moment.tzinfo is None:
        raise CampaignError("A time needs its time zone.")
    return moment


def clean(values: dict[str, Any]) -> dict[str, Any]:
    """The campaign's fields as stored, from what an editor or a script gave; refused with
    a message (`CampaignError`) when something is wrong, before anything is written."""
    name = _text(values, "name", 200)
    if not name:
        raise CampaignError("Give the campaign a name.")
    kind = values.get("timing") or "now"
    if kind not in ("now", "at", "local", "best"):
        raise CampaignError("Send now, at a time, at a local time or at each one's best time.")
    local_time = str(values.get("local_time") or "09:00").strip()
    timing.parse_local_time(local_time)
    return {
        "name": name,
        "template_id": _template(values.get("template_id")),
        "subject": _line(values, "subject", 400, "The subject"),
        "preheader": _line(values, "preheader", 300, "The preheader"),
        "from_name": _text(values, "from_name", 200),
        "audience": audience.clean(values.get("audience")),
        "timing": kind,
        "send_at": _moment(values.get("send_at")),
        "local_time": f"{timing.parse_local_time(local_time):%H:%M}",
        "window_hours": _int(values, "window_hours", 24, 1, 72, "The window (hours)"),
        "ab": _ab(values.get("ab"), kind),
        "conversion_form": _text(values, "conversion_form", 100),
        "conversion_days": _int(values, "conversion_days", 7, 1, 90, "Days for a conversion"),
        "public": bool(values.get("public")),
        "utm_campaign": _text(values, "utm_campaign", 100),
    }
