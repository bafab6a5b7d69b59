"""A campaign's email as a chosen contact would get it, each variant of an A/B test in turn,
and "send a test to me".

As in the mail template editor, the preview is the email as it will be sent, in an `<iframe
srcdoc>` with `sandbox` (no scripts, its own origin), its `<style>` block allowed by hash in
the page's policy and nothing more. Unsubscribe links in a preview go nowhere; in a test they
go to the site's home page, so trying one unsubscribes nobody. Tests are rate limited per
person, as the mail template editor's are.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app, flash, redirect, request, url_for
from flask_login import current_user

from engine import audit, mail
from engine.auth import require_role
from engine.contacts.models import Contact
from engine.content.service import site_name
from engine.db import db, write
from engine.mail import previews, rendering
from engine.mail.compose import named_sender
from engine.mail.models import EmailTemplate
from engine.mail.service import sender
from engine.web.ratelimit import limiter
from plugins.newsletters import service
from plugins.newsletters.admin_form import campaign_or_404
from plugins.newsletters.models import Campaign

TEST_LIMIT, TEST_WINDOW = 10, 600  # tests a person may send per window (seconds)


@dataclass
class Preview:
    who: str  # whom it is personalised for, in words
    typed: str = ""  # the address asked for, as typed
    note: str = ""  # why it is not that contact, or why nothing shows
    variant: str = "a"
    variants: list[service.Variant] = field(default_factory=list)
    sender: str = ""
    subject: str = ""
    preheader: str = ""
    html: str = ""
    text: str = ""
    contact_id: int | None = None
    recent: list[Contact] = field(default_factory=list)  # addresses offered to pick from


def chosen_contact() -> tuple[Contact | None, str, str]:
    """(the contact asked for by email, the address as typed, a note if none was found)."""
    return previews.contact_asked_for(request.values.get("contact") or "")


def _variant(campaign: Campaign, key: str) -> service.Variant:
    every = service.variants(campaign)
    return next((v for v in every if v.key == key), every[0])


def _render(campaign: Campaign, variant: service.Variant, values: dict[str, Any]
            ) -> tuple[rendering.RenderedEmail, str, str]:
    """(the email, its preheader, its From) of one variant, or TemplateRenderError."""
    template = db.session.get(EmailTemplate, variant.template_id) if variant.template_id \
        else None
    if template is None:
        raise LookupError("Choose the email (a marketing template) to see it here.")
    email = rendering.compiled(template, subject=variant.subject or None,
                               preheader=campaign.preheader or None, marketing=True)
    rendered = email.render(values)
    preheader = rendering.render_line(campaign.preheader or template.preheader or "", values)
    from_header = named_sender(variant.from_name) if variant.from_name else sender(site_name())
    return rendered, preheader, from_header


def preview(campaign: Campaign) -> Preview:
    """The preview asked for in the request (`contact`, `variant`) of a stored campaign or of
    a draft's values (an unsaved `Campaign`)."""
    contact, typed, note = chosen_contact()
    values, who = previews.values_for(contact, "#")
    decided = (campaign.ab_result or {}).get("sent_to_rest") or "a"  # the one most got
    chosen = _variant(campaign, request.values.get("variant") or decided)
    shown = Preview(who=who, typed=typed, note=note, variant=chosen.key,
                    variants=service.variants(campaign),
                    contact_id=contact.id if contact else None, recent=previews.recent_contacts())
    try:
        rendered, shown.preheader, shown.sender = _render(campaign, chosen, values)
    except LookupError as exc:
        shown.note = str(exc)
        return shown
    except rendering.TemplateRenderError as exc:
        shown.note = f"This contact's values cannot be used in this email: {exc}"
        return shown
    shown.subject, shown.text = rendered.subject, rendered.text
    shown.html = previews.framed(rendered.html)
    return shown


@require_role("editor")
def send_test(campaign_id: int) -> Any:
    """The saved campaign's chosen variant, as the chosen contact (or the sample), to the
    signed-in person."""
    campaign = campaign_or_404(campaign_id)
    contact, typed, _note = chosen_contact()
    chosen = _variant(campaign, request.form.get("variant") or "a")
    back = redirect(url_for("newsletters_admin.edit", campaign_id=campaign.id,
                            **({"contact": typed} if typed else {}),
                            **({"variant": chosen.key} if chosen.key != "a" else {}))
                    + "#preview")
    if not limiter().hit(f"campaign-test:{current_user.id}", TEST_LIMIT, TEST_WINDOW):
        flash(f"Not sent: at most {TEST_LIMIT} tests every {TEST_WINDOW // 60} minutes. "
              "Try again in a few minutes.", "error")
        return back
    home = current_app.config.get("SITE_URL", "").rstrip("/")
    values, who = previews.values_for(contact, f"{home}/#email-test" if home else "#")
    try:
        rendered, _preheader, from_header = _render(campaign, chosen, values)
    except LookupError as exc:
        flash(f"Not sent: {exc}", "error")
        return back
    except rendering.TemplateRenderError as exc:
        flash(f"Not sent: this contact's values cannot be used in this email ({exc}).",
              "error")
        return back
    with write():
        mail.send(current_user.email, f"[Test] {rendered.subject}", rendered.html,
                  rendered.text, headers={"From": from_header},
                  contact_id=contact.id if contact else None)
        audit.record(current_user, "newsletters.test", campaign.name,
                     {"id": campaign.id, "variant": chosen.key,
                      "contact_id": contact.id if contact else None})
    variant = f" (variant {chosen.key.upper()})" if campaign.ab else ""
    flash(f"A test of “{campaign.name}”{variant}, as {who}, is on its way to "
          f"{current_user.email}.")
    return back
