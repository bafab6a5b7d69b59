"""What an editor does to a campaign, each a POST: send now or schedule (after a page that
says what goes out, to how many, and how), unschedule, pause, resume, cancel (after asking),
duplicate, delete a campaign that never started (after asking).

Each goes through one `service` call; a campaign whose status changed meanwhile (another
editor, or the tick) is refused with the service's sentence, shown as it is. Every change is
in the audit log.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from engine import audit
from engine.auth import require_role
from engine.contacts.timezones import site_zone
from engine.content.service import site_name
from engine.db import utcnow, write
from engine.mail.service import sender
from engine.web.links import SiteUrlMissing
from plugins.newsletters import admin_words, service
from plugins.newsletters.admin_form import campaign_or_404, local_input, read_local
from plugins.newsletters.admin_state import progress
from plugins.newsletters.errors import CampaignError
from plugins.newsletters.models import Campaign


def _back(campaign_id: int) -> Any:
    return redirect(url_for("newsletters_admin.edit", campaign_id=campaign_id))


def _test_split(campaign: Campaign, total: int) -> tuple[int, int]:
    """(how many get the test, how many each variant) - as `service` will draw them."""
    if not campaign.ab or not total:
        return 0, 0
    size = service.test_group_size(campaign, total)
    return size, size // len(campaign.ab["variants"])


@require_role("editor")
def confirm(campaign_id: int) -> Any:
    """What goes out (email, subject, from, preheader), to whom and how many, when and with
    which test - repeated before an irreversible send - with "Send now" and "Schedule"."""
    campaign = campaign_or_404(campaign_id)
    if campaign.status not in service.EDITABLE:
        return _back(campaign.id)
    zone = site_zone()
    total = service.audience_count(campaign)
    later = campaign.send_at if campaign.send_at and campaign.send_at > utcnow() else None
    return render_template(
        "newsletters/confirm.html", campaign=campaign, total=total,
        problems=service.ready(campaign), split=_test_split(campaign, total), zone=zone,
        send_at=local_input(later, zone), timing=admin_words.timing(campaign, zone),
        ab=admin_words.ab(campaign), outgoing=admin_words.outgoing(campaign, sender(site_name())),
        audience=admin_words.audience(campaign.audience, admin_words.segment_names(
            (campaign.audience.get("segments") or [])
            + (campaign.audience.get("exclude_segments") or []))))


def _start(campaign_id: int, at: Any, action: str) -> Campaign:
    """`service.schedule` and its audit entry, in one transaction."""
    with write():
        saved = service.schedule(campaign_id, at, by=current_user.email)
        audit.record(current_user, action, saved.name,
                     {"id": saved.id, "send_at": saved.send_at.isoformat(),
                      "recipients_now": service.audience_count(saved)})
    return saved


@require_role("editor")
def send(campaign_id: int) -> Any:
    campaign = campaign_or_404(campaign_id)
    try:
        saved = _start(campaign.id, None, "newsletters.send")
    except (CampaignError, SiteUrlMissing) as exc:
        flash(f"Not sent: {exc}", "error")
        return redirect(url_for("newsletters_admin.confirm", campaign_id=campaign.id))
    how = {"local": f", each at {saved.local_time} in their own time zone",
           "best": ", each at their usual hour"}.get(saved.timing, "")
    flash(f"“{saved.name}” is sending: it starts within seconds{how}.")
    return _back(saved.id)


@require_role("editor")
def schedule(campaign_id: int) -> Any:
    campaign = campaign_or_404(campaign_id)
    zone = site_zone()
    try:
        at = read_local(request.form.get("send_at") or "", zone)
        if at is None:
            raise CampaignError("Choose the date and time to send it at.")
        if at <= utcnow():
            raise CampaignError("That time has passed: choose a later one, or send it now.")
        saved = _start(campaign.id, at, "newsletters.schedule")
    except (CampaignError, SiteUrlMissing) as exc:
        flash(f"Not scheduled: {exc}", "error")
        return redirect(url_for("newsletters_admin.confirm", campaign_id=campaign.id))
    flash(f"“{saved.name}” is scheduled for {admin_words.local(saved.send_at, zone)}.")
    return _back(saved.id)


def _change(campaign_id: int, change: Callable[..., Campaign], action: str,
            message: str) -> Any:
    """One status change and its audit entry; the service's refusal shown as it is."""
    campaign = campaign_or_404(campaign_id)
    before = campaign.status
    try:
        with write():
            saved = change(campaign.id, by=current_user.email)
            audit.record(current_user, action, saved.name,
                         {"id": saved.id, "status": {"old": before, "new": saved.status}})
    except CampaignError as exc:
        flash(str(exc), "error")
        return _back(campaign.id)
    flash(message.format(name=saved.name))
    return _back(saved.id)


@require_role("editor")
def unschedule(campaign_id: int) -> Any:
    return _change(campaign_id, service.unschedule, "newsletters.unschedule",
                   "“{name}” is a draft again: nothing is sent until you send or schedule it.")


@require_role("editor")
def pause(campaign_id: int) -> Any:
    return _change(campaign_id, service.pause, "newsletters.pause",
                   "“{name}” paused.")


@require_role("editor")
def resume(campaign_id: int) -> Any:
    return _change(campaign_id, service.resume, "newsletters.resume",
                   "“{name}” resumed.")


@require_role("editor")
def cancel(campaign_id: int) -> Any:
    """GET: what cancelling does, and a button; POST: cancel."""
    campaign = campaign_or_404(campaign_id)
    if request.method == "GET":
        return render_template("newsletters/cancel.html", campaign=campaign,
                               progress=progress(campaign))
    return _change(campaign_id, service.cancel, "newsletters.cancel",
                   "“{name}” cancelled: nobody not yet sent to gets it.")


@require_role("editor")
def duplicate(campaign_id: int) -> Any:
    campaign = campaign_or_404(campaign_id)
    try:
        with write():
            copy = service.duplicate(campaign.id, by=current_user.email)
            audit.record(current_user, "newsletters.duplicate", copy.name,
                         {"id": copy.id, "from": campaign.id})
    except CampaignError as exc:
        flash(str(exc), "error")
        return _back(campaign.id)
    flash(f"“{copy.name}” is a new draft, a copy of “{campaign.name}”.")
    return _back(copy.id)


@require_role("editor")
def web_version(campaign_id: int) -> Any:
    """Publish the web version in the archive, or take it down (`public` = 1 or 0)."""
    campaign = campaign_or_404(campaign_id)
    public = request.form.get("public") == "1"
    with write():
        saved = service.set_public(campaign.id, public, by=current_user.email)
        audit.record(current_user, "newsletters.web_version", saved.name,
                     {"id": saved.id, "public": public})
    flash(f"“{saved.name}” is in the archive." if public and saved.status == "sent" else
          f"“{saved.name}” will be in the archive once sent." if public else
          f"“{saved.name}” is not in the archive.")
    return _back(saved.id)


@require_role("editor")
def delete(campaign_id: int) -> Any:
    """GET: what deleting removes, and a button; POST: delete (only a campaign that never
    started: `service.delete` refuses the others, whose figures must stay)."""
    campaign = campaign_or_404(campaign_id)
    if request.method == "GET":
        return render_template("newsletters/delete.html", campaign=campaign,
                               deletable=service.deletable(campaign))
    try:
        with write():
            gone = service.delete(campaign.id, by=current_user.email)
            audit.record(current_user, "newsletters.delete", gone.name,
                         {"id": gone.id, "status": gone.status, "post_id": gone.post_id})
    except CampaignError as exc:
        flash(f"Not deleted: {exc}", "error")
        return _back(campaign.id)
    flash(f"“{gone.name}” deleted.")
    return redirect(url_for("newsletters_admin.index"))
