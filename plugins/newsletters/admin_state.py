"""A campaign that has started, read-only: what it is, how far it got (recipients by state, and
the mail core's sends by state), its A/B test and the decision with its evidence, and the
email as sent. While it is sending the progress refreshes itself (htmx, every few seconds).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app, make_response, render_template, request
from sqlalchemy import func, select

from engine.admin.views.mail_templates import allow_preview_styles
from engine.auth import require_role
from engine.contacts.timezones import site_zone
from engine.db import db
from engine.mail.models import EmailTemplate, MailSend
from plugins.newsletters import abtest, admin_preview, admin_words, decisions, service
from plugins.newsletters.admin_form import campaign_or_404
from plugins.newsletters.models import Campaign, Recipient

# Recipients and sends by state, in the order and words the page shows them.
RECIPIENT_WORDS = {"waiting": "Waiting for their time", "held": "Held for the A/B winner",
                   "released": "Handed to the mailer", "skipped": "Left the audience",
                   "cancelled": "Cancelled"}
SEND_WORDS = {"sent": "Sent", "queued": "Queued", "sending": "Sending", "held": "Paused",
              "failed": "Failed", "suppressed": "Suppressed", "skipped": "Not sent"}


@dataclass(frozen=True)
class Progress:
    recipients: dict[str, int]
    sends: dict[str, int]
    opened: int
    clicked: int
    total: int  # the frozen audience

    @property
    def sent(self) -> int:
        return self.sends.get("sent", 0)

    @property
    def percent(self) -> int:
        return round(100 * self.sent / self.total) if self.total else 0


def progress(campaign: Campaign) -> Progress:
    recipients = dict(db.session.execute(select(Recipient.status, func.count()).where(
        Recipient.campaign_id == campaign.id).group_by(Recipient.status)).all())
    ids = [m.id for m in service.mailings(campaign)]
    sends: dict[str, int] = {}
    opened = clicked = 0
    if ids:
        sends = dict(db.session.execute(select(MailSend.status, func.count()).where(
            MailSend.mailing_id.in_(ids)).group_by(MailSend.status)).all())
        opened, clicked = db.session.execute(select(
            func.count(MailSend.opened_at), func.count(MailSend.clicked_at)).where(
            MailSend.mailing_id.in_(ids))).one()
    return Progress(recipients, sends, opened, clicked, campaign.recipients)


@dataclass(frozen=True)
class VariantRow:
    key: str
    what: str  # the subject, from name or template the variant differs by
    sent: int
    successes: int
    rate: float
    p_best: float | None


def variant_rows(campaign: Campaign) -> list[VariantRow]:
    """Each variant's figures: as decided, or so far while the test runs."""
    test = campaign.ab or {}
    if not test:
        return []
    decided = (campaign.ab_result or {}).get("variants") or {}
    live = {} if decided else {f.key: f for f in decisions.figures(campaign)} \
        if campaign.started_at else {}
    names = dict(db.session.execute(select(EmailTemplate.id, EmailTemplate.name)).all())
    rows = []
    for variant in service.variants(campaign):
        what = {"subject": variant.subject, "from_name": variant.from_name}.get(
            test["field"], names.get(variant.template_id, "a deleted template"))
        if variant.key in decided:
            found = decided[variant.key]
            rows.append(VariantRow(variant.key, what, found["sent"], found["successes"],
                                   found["rate"], found.get("p_best")))
        else:
            figures = live.get(variant.key, abtest.Figures(variant.key, 0, 0))
            rows.append(VariantRow(variant.key, what, figures.sent, figures.successes,
                                   figures.rate, None))
    return rows


def decision_due(campaign: Campaign) -> datetime | None:
    if not campaign.ab or not campaign.started_at:
        return None
    return campaign.started_at + timedelta(hours=campaign.ab["wait_hours"])


def _progress_context(campaign: Campaign) -> dict[str, Any]:
    """What the progress card shows (on the page, and alone when it refreshes)."""
    return {"campaign": campaign, "progress": progress(campaign), "rows": variant_rows(campaign),
            "due": decision_due(campaign), "zone": site_zone(), "words": admin_words,
            "recipient_words": RECIPIENT_WORDS, "send_words": SEND_WORDS,
            "metric": abtest.METRICS.get((campaign.ab or {}).get("metric", ""), "")}


def state(campaign: Campaign) -> Any:
    shown = admin_preview.preview(campaign)
    template = db.session.get(EmailTemplate, campaign.template_id) \
        if campaign.template_id else None
    html = render_template(
        "newsletters/campaign.html", preview=shown, template=template,
        audience=admin_words.audience(campaign.audience, admin_words.segment_names()),
        report="newsletters_admin.report" in current_app.view_functions,
        test_limit=admin_preview.TEST_LIMIT, **_progress_context(campaign))
    response = current_app.make_response(html)
    allow_preview_styles(response, shown.html)
    return response


@require_role("viewer")
def progress_part(campaign_id: int) -> Any:
    """The progress card alone, for the page to refresh while the campaign sends; the whole
    page when the status changed since it was shown (started, finished, decided elsewhere),
    so its heading and buttons follow."""
    campaign = campaign_or_404(campaign_id)
    response = make_response(render_template("newsletters/_progress.html",
                                              **_progress_context(campaign)))
    if request.args.get("was") not in (None, campaign.status):
        response.headers["HX-Refresh"] = "true"
    return response
