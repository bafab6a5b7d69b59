"""The plugin's settings, edited by the owner in the admin's plugin page (stored by the core)."""
from __future__ import annotations

from typing import Any

import wtforms
from flask import current_app
from wtforms import validators
from wtforms.fields.choices import SelectChoice

from engine.plugins import current

SLUG = "tracking"


class TrackingSettings(wtforms.Form):
    honour_dnt = wtforms.BooleanField(
        "Honour Do Not Track and Global Privacy Control", default=True,
        description="Browsers sending DNT: 1 or Sec-GPC: 1 are not tracked at all.")
    consent_mode = wtforms.BooleanField(
        "Consent mode", default=False,
        description="Record nothing until the visitor accepts (a small banner asks them).")
    ip_storage = wtforms.SelectField(
        "IP addresses", default="truncate",
        choices=[SelectChoice("truncate", "Truncated (last IPv4 byte, last 80 IPv6 bits removed)"),
                 SelectChoice("none", "Not stored"), SelectChoice("full", "Stored in full")])
    filter_bots = wtforms.BooleanField(
        "Filter bots", default=True,
        description="Ignore crawlers, headless and automated browsers.")
    retention_days = wtforms.IntegerField(
        "Keep anonymous visitors' events for (days)", default=180,
        validators=[validators.InputRequired(), validators.NumberRange(1, 3650)])
    session_minutes = wtforms.IntegerField(
        "A new visit starts after this many idle minutes", default=30,
        validators=[validators.InputRequired(), validators.NumberRange(1, 24 * 60)])


def settings() -> dict[str, Any]:
    """The current settings (defaults filled in), as every process sees them.

    Read on every beacon hit, so the value is kept until the plugin manager next re-reads the
    stored state (it replaces its `enabled` set each time it does): building the settings form
    anew on every hit would cost more than the rest of the hit.
    """
    plugins = current()
    plugins.refresh()
    cache = current_app.extensions.setdefault("tracking.settings", {})
    if cache.get("state") is not plugins.enabled:
        cache["values"] = plugins.settings(SLUG)
        cache["state"] = plugins.enabled
    return cache["values"]
