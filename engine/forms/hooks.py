"""The forms concern as a built-in plugin: its shortcodes and its follow-up jobs."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app, url_for
from markupsafe import Markup, escape
from sqlalchemy import select

from engine import plugins
from engine.contacts import store
from engine.contacts.gdpr import PersonalData
from engine.contacts.identity import resolve
from engine.contacts.models import Subscription
from engine.content.sync import ContentFolder
from engine.db import db, write
from engine.forms import security, service
from engine.forms.models import Submission
from engine.forms.sync import export_forms, sync_forms
from engine.jobs import job
from engine.mail import system_emails
from engine.plugins import hookimpl
from engine.web.links import external_url, site_url


@job("forms.submitted")
def form_submitted(submission_id: int, created: bool = False,
                   changes: dict[str, Any] | None = None, confirm: list[int] | None = None,
                   form: str | None = None) -> None:
    """Every follow-up of one submission: plugins' hooks, then the emails it asks for.

    The hooks are each guarded by the plugin manager, so a failing plugin never makes the
    job retry (and the others hear about the submission once). The emails are queued in one
    transaction at the end; only a crash between that commit and the row's `done` mark could
    queue them twice. Nothing is loaded that nothing uses: when no enabled plugin implements
    these hooks and the form (named in the row) sends no email, the job is done at once.
    """
    manager = plugins.current()
    contact_hook = "on_contact_created" if created else "on_contact_updated" if changes else ""
    listened = any(manager.implemented(hook) for hook in (contact_hook, "on_form_submitted")
                   if hook)
    if confirm:  # raises before any hook runs, so the retry once it is set repeats nothing
        site_url()
    definition = service.get(form) if form else None
    if form and not listened and not confirm and not (definition and definition.notify):
        return
    submission = db.session.get(Submission, submission_id)
    if submission is None:
        return
    contact = resolve(submission.contact_id) if submission.contact_id else None
    if contact is not None:
        if created:
            manager.call("on_contact_created", contact=contact)
        elif changes:
            manager.call("on_contact_updated", contact=contact,
                         changes={k: tuple(v) for k, v in changes.items()})
    manager.call("on_form_submitted", submission=submission, contact=contact)
    definition = definition or service.get(submission.form_slug)
    if definition is None or contact is None or not (definition.notify or confirm):
        return
    with write():
        if definition.notify:
            _notify_owner(definition, submission, contact)
        if confirm:
            _send_confirmation(confirm, contact)


def answers(definition: Any, submission: Submission) -> list[tuple[str, str]]:
    """`(label, value)` for each answer, in the form's order: what the owner reads."""
    data = submission.data or {}
    rows = []
    for spec in definition.fields:
        if spec.name not in data:
            continue
        value = data[spec.name]
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        rows.append((spec.label or spec.name, "" if value is None else str(value)))
    return rows


def _notify_owner(definition: Any, submission: Submission, contact: Any) -> None:
    """The owner's email (the "Form submission notice" system email, editable in Admin →
    Email): every answer under its label, and a link to the contact's page."""
    contact_url = external_url("admin.contacts_show", contact_id=contact.id)
    for address in definition.notify:
        system_emails.send_system(
            system_emails.SUBMISSION_NOTICE, address, contact,
            answers=answers(definition, submission), headers={"Reply-To": contact.email},
            form_title=definition.title, contact_url=contact_url,
            page_url=submission.page_url or "")


def _send_confirmation(subscription_ids: list[int], contact: Any) -> None:
    """The double opt-in email with its signed link (the "Subscription confirmation" system
    email, editable in Admin → Email), for the subscriptions that have had none
    within `FORM_CONFIRMATION_RESEND_SECONDS`: a visitor who sends the form again and again
    (or two browsers at once) gets one email, and another only once that much time has passed.
    Claimed in the transaction that queues the email (see `store.claim_confirmations`)."""
    every = timedelta(seconds=int(current_app.config["FORM_CONFIRMATION_RESEND_SECONDS"]))
    claimed = store.claim_confirmations(subscription_ids, every)
    if not claimed:
        return
    subs = list(db.session.scalars(select(Subscription).where(Subscription.id.in_(claimed))
                                   .order_by(Subscription.id)))
    token = security.sign("confirm", [s.id for s in subs])
    link = external_url("forms.confirm", token=token)
    system_emails.send_system(
        system_emails.CONFIRMATION, contact.email, contact, confirm_url=link,
        lists=lists_in_words([s.list_slug for s in subs]))


def lists_in_words(slugs: list[str]) -> str:
    """The `{{ lists }}` of the confirmation email, to read in a sentence ("…receive the
    “ebook readers” emails from…"): lists are known only by their slugs."""
    names = [f"“{slug.replace('-', ' ')}”" for slug in slugs]
    if not names:
        return "our emails"
    joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"the {joined} emails"


def form_shortcode(args: dict[str, str], context: dict[str, Any]) -> str:
    """`[form slug]`: the anonymous form, safe to cache; the script personalises it."""
    from engine.forms.views import render_fields, render_form
    slug = args.get("slug") or args.get("0") or next(iter(args.values()), "")
    definition = service.get(slug)
    if definition is None:
        return str(Markup('<p class="magnet-form-missing">Form “{}” not found.</p>').format(slug))
    return str(render_form(definition, render_fields(definition)))


def asset_shortcode(args: dict[str, str], context: dict[str, Any]) -> str:
    """`[asset file.pdf]`: a call to action leading to the form that delivers the file."""
    name = args.get("name") or args.get("0") or next(iter(args.values()), "")
    for row in service.all_forms():
        success = (row.definition.get("success") or {})
        if success.get("action") == "asset" and success.get("asset") == name:
            label = args.get("label") or f"Get {row.title}"
            return str(Markup('<a class="magnet-asset-cta" href="{}">{}</a>').format(
                url_for("forms.show", slug=row.slug), label))
    return str(Markup('<span class="magnet-asset-missing">{}</span>').format(escape(name)))


@hookimpl
def register_jobs() -> list[Any]:
    return [form_submitted]


@hookimpl
def register_content_folders() -> list[Any]:
    return [ContentFolder("forms", sync=lambda folder, dry_run: sync_forms(folder, dry_run),
                          export=export_forms)]


@hookimpl
def register_personal_data() -> list[Any]:
    return [PersonalData("form_submissions",
                         export=lambda person: service.submissions_for(person.contact_ids),
                         erase=lambda person: service.erase_submissions(person.contact_ids))]


@hookimpl
def register_shortcodes() -> dict[str, Any]:
    return {"form": form_shortcode, "asset": asset_shortcode}
