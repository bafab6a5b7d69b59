"""The campaign editor: a new campaign, a draft or scheduled one changed, its live recipient
count, and "Preview changes" (the draft's email shown without saving it).

Saving goes through `service.save`; what it refuses (`CampaignError`) is shown on the form with
a 400 and nothing is stored. A form saved without a change stores nothing, not even a new
"last changed" time. "Send or schedule…" saves first, then asks (`admin_actions.confirm`).
A campaign that has started is no longer a form: its page shows its progress
(`admin_state`).
"""
from __future__ import annotations

from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from engine import audit
from engine.admin.views.mail_templates import allow_preview_styles
from engine.auth import require_role
from engine.contacts.timezones import site_zone
from engine.content.service import site_name
from engine.db import utcnow, write
from engine.mail.service import sender
from plugins.newsletters import (
    admin_form,
    admin_preview,
    admin_state,
    admin_words,
    audience,
    service,
)
from plugins.newsletters.admin_form import Draft, campaign_or_404
from plugins.newsletters.errors import CampaignError
from plugins.newsletters.models import Campaign


def count_of(draft: Draft) -> tuple[int | None, str]:
    """(how many the draft's audience reaches now, or None with what to fix; None and no
    message while nobody is chosen yet)."""
    try:
        chosen = audience.clean({key: sorted(draft[key]) for key in audience.KEYS})
    except CampaignError as exc:
        return None, str(exc)
    if audience.is_empty(chosen):
        return None, ""
    return audience.count(chosen), ""


def page(campaign: Campaign | None, draft: Draft, shown_as: Campaign | None, *,
         error: str = "", unsaved: bool = False, status: int = 200) -> Any:
    """The editor, showing `draft`; the preview is of `shown_as` (the stored campaign, or the
    draft's values unsaved), none for a new campaign not yet previewed."""
    shown = admin_preview.preview(shown_as) if shown_as is not None else None
    count, count_error = count_of(draft)
    html = render_template(
        "newsletters/edit.html", campaign=campaign, draft=draft,
        c=admin_form.choices(draft), preview=shown, error=error, unsaved=unsaved,
        can_edit=current_user.can("editor"), count=count, count_error=count_error,
        site_sender=sender(site_name()), problems=service.ready(campaign) if campaign else [],
        scheduled_for=admin_words.local(campaign.send_at, site_zone()) if campaign else "",
        test_limit=admin_preview.TEST_LIMIT)
    response = current_app.make_response((html, status))
    allow_preview_styles(response, shown.html if shown else "")
    return response


@require_role("editor")
def new() -> Any:
    return page(None, admin_form.defaults(), None)


@require_role("viewer")
def edit(campaign_id: int) -> Any:
    campaign = campaign_or_404(campaign_id)
    # Sent, or starting: "Send now" (or a scheduled time that has come) is started by the
    # workers within seconds; meanwhile its page shows it starting, not an editor.
    if campaign.status not in service.EDITABLE or (
            campaign.status == "scheduled" and campaign.send_at is not None
            and campaign.send_at <= utcnow()):
        return admin_state.state(campaign)
    return page(campaign, admin_form.shown(campaign, site_zone()), campaign)


@require_role("editor")
def create() -> Any:
    return _save(None)


@require_role("editor")
def save(campaign_id: int) -> Any:
    return _save(campaign_or_404(campaign_id))


def _save(campaign: Campaign | None) -> Any:
    """Save (then show the campaign, or ask how to send it), or show the draft's preview."""
    draft = admin_form.posted(request.form)
    action = request.form.get("action") or "save"
    try:
        values = admin_form.values(draft, site_zone())
        fields = service.clean(values)
    except CampaignError as exc:
        return page(campaign, draft, None, error=str(exc), unsaved=True, status=400)
    if action == "preview":
        return page(campaign, draft, Campaign(**fields), unsaved=True)
    changed = admin_form.changed(campaign, fields) if campaign is not None else list(fields)
    if changed:
        try:
            with write():
                saved = service.save(values, campaign.id if campaign else None,
                                     by=current_user.email)
                audit.record(current_user, "newsletters.update" if campaign
                             else "newsletters.create", saved.name,
                             {"id": saved.id, "changed": changed} if campaign
                             else {"id": saved.id})
        except CampaignError as exc:  # started meanwhile, say
            return page(campaign, draft, None, error=str(exc), unsaved=True, status=400)
        if action != "send":
            flash(f"“{saved.name}” {'saved' if campaign else 'created'}.")
    else:
        saved = campaign
        if action != "send":
            flash("Nothing changed.")
    if action == "send":
        return redirect(url_for("newsletters_admin.confirm", campaign_id=saved.id))
    return redirect(url_for("newsletters_admin.edit", campaign_id=saved.id))


@require_role("editor")
def count() -> Any:
    """The live count: how many the audience in the form reaches now, or what to fix."""
    number, error = count_of(admin_form.posted(request.form))
    return render_template("newsletters/_count.html", count=number, count_error=error)
