"""The plugin's settings: decay, the stage thresholds and where hand-offs go (edited by an owner
in Admin → Plugins → Lead scoring; stored by the core)."""
from __future__ import annotations

from typing import Any

import wtforms
from wtforms import validators
from wtforms.fields.choices import SelectChoice

from engine.plugins import current
from engine.web.outbound import OutboundRefused, check_url

SLUG = "scoring"


def _webhook(form: wtforms.Form, field: wtforms.Field) -> None:
    """The webhook must be a URL the site may post to (`engine.web.outbound`)."""
    if field.data:
        try:
            field.data = check_url(field.data)
        except OutboundRefused as exc:
            raise validators.ValidationError(str(exc)) from None


class ScoringSettings(wtforms.Form):
    half_life_days = wtforms.IntegerField(
        "Engagement half-life (days)", default=30,
        validators=[validators.InputRequired(), validators.NumberRange(1, 3650)],
        description="Engagement points lose half their value in this many days. Fit does not "
                    "fade. Changing it recalculates every contact's engagement.")
    mql_combined = wtforms.IntegerField(
        "Marketing-qualified at a combined score of", default=50,
        validators=[validators.InputRequired(), validators.NumberRange(-100_000, 100_000)])
    mql_fit = wtforms.IntegerField(
        "…and for marketing-qualified, a fit score of at least", default=0,
        validators=[validators.InputRequired(), validators.NumberRange(-100_000, 100_000)])
    sql_combined = wtforms.IntegerField(
        "Sales-qualified at a combined score of (0: only by hand)", default=0,
        validators=[validators.InputRequired(), validators.NumberRange(-100_000, 100_000)])
    sql_fit = wtforms.IntegerField(
        "…and for sales-qualified, a fit score of at least", default=0,
        validators=[validators.InputRequired(), validators.NumberRange(-100_000, 100_000)])
    poor_fit_below = wtforms.IntegerField(
        "Poor fit below a fit score of", default=-20,
        validators=[validators.InputRequired(), validators.NumberRange(-100_000, 100_000)],
        description="Poor-fit contacts are marked, never qualified automatically, and never "
                    "handed off, whatever their engagement.")
    handoff_stage = wtforms.SelectField(
        "Hand off to sales on reaching", default="marketing_qualified",
        choices=[SelectChoice("marketing_qualified", "Marketing-qualified"),
                 SelectChoice("sales_qualified", "Sales-qualified")])
    owner_field = wtforms.StringField(
        "Contact field holding the assigned salesperson's email", default="owner_email",
        validators=[validators.Length(max=60)],
        description="A custom field of the contact; when it holds an address, the hand-off "
                    "goes there.")
    handoff_email = wtforms.StringField(
        "Otherwise send hand-offs to", default="",
        validators=[validators.Optional(), validators.Email(), validators.Length(max=320)])
    handoff_webhook = wtforms.URLField(
        "Also post hand-offs to this webhook (HTTPS)", default="",
        validators=[validators.Optional(), validators.Length(max=2000), _webhook],
        description="A JSON POST for a CRM; addresses on this machine or a private network "
                    "are refused.")


def settings() -> dict[str, Any]:
    """The current settings, defaults filled in (cached by the plugin manager)."""
    return current().settings(SLUG)
