"""System emails: the messages the engine itself sends (the double opt-in confirmation, the
owner's notice of a form submission), kept as email templates an editor changes in Admin →
Email like any other, marked by `EmailTemplate.system` with their slug.

They are seeded by the mail branch's migration (`b7e3f0c2a915`), cannot be deleted, can be
reset to the text below, and are always transactional (a confirmation must reach someone who
unsubscribed from marketing). Each has names of its own beside `contact`, `company` and
`site` (`NAMES`), some required (`REQUIRED`: a confirmation without its link would confirm
nobody). They are sent in the site's name from its sender (`mail.sender`).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import select

from engine.db import db
from engine.mail import rendering
from engine.mail.models import EmailTemplate
from engine.mail.service import send, sender

CONFIRMATION = "system-confirmation"
SUBMISSION_NOTICE = "system-submission-notice"


@dataclass(frozen=True)
class SystemEmail:
    slug: str
    name: str
    purpose: str  # when it is sent, for the editor
    names: dict[str, str]  # its own names -> what they hold
    required: tuple[str, ...]
    subject: str
    body: str


DEFAULTS = {
    CONFIRMATION: SystemEmail(
        CONFIRMATION, "Subscription confirmation",
        "Sent when someone signs up with a form that asks for confirmation (double opt-in): "
        "they are subscribed once they follow its link.",
        {"confirm_url": "the signed link that confirms the subscription (required)",
         "lists": "the lists they asked for, in words"},
        ("confirm_url",),
        "Please confirm your subscription to {{ site.name }}",
        """Hello {{ contact.first_name | default("there") }},

Please confirm that you want to receive {{ lists }} from {{ site.name }}.

[Confirm my subscription]({{ confirm_url }})

If you did not ask for this, ignore this email and nothing will happen.
"""),
    SUBMISSION_NOTICE: SystemEmail(
        SUBMISSION_NOTICE, "Form submission notice",
        "Sent to the addresses a form notifies, each time it is sent.",
        {"form_title": "the form's title", "answers": "every answer under its field's label",
         "contact_url": "the contact's page in the admin",
         "page_url": "the page the form was sent from (may be empty)"},
        (),
        "New submission of {{ form_title }} on {{ site.name }}",
        """New submission of **{{ form_title }}** on {{ site.name }} by {{ contact.email }}.

{{ answers }}

{% if page_url %}Sent from {{ page_url }}{% endif %}

[See {{ contact.email }} in the admin]({{ contact_url }})
"""),
}
SAMPLES = {"confirm_url": "https://www.example.com/forms/confirm/sample",
           "lists": "the “newsletter” emails", "form_title": "Contact us",
           "contact_url": "https://www.example.com/admin/contacts/1",
           "page_url": "https://www.example.com/contact"}
SAMPLE_ANSWERS = [("Your name", "Alex Example"), ("Message", "Hello!\nA second line.")]


def spec(template: EmailTemplate | None) -> SystemEmail | None:
    """The system email a template is, or None for an editor's own."""
    return DEFAULTS.get(getattr(template, "system", "") or "")


def missing_required(system: SystemEmail, subject: str, body: str) -> list[str]:
    """The required names the template does not use (`{{ confirm_url }}`)."""
    source = subject + "\n" + body
    return [name for name in system.required
            if not any(f"{{{{{space}{name}" in source for space in ("", " ", "  "))]


def seed_rows() -> list[dict[str, Any]]:
    """The rows the migration inserts (names made unique against existing templates there)."""
    return [{"system": s.slug, "name": s.name, "subject": s.subject, "body": s.body,
             "kind": "transactional", "format": "markdown", "preheader": ""}
            for s in DEFAULTS.values()]


def reset(template: EmailTemplate) -> None:
    """Put the default subject and body back (inside the caller's `write()`)."""
    system = spec(template)
    if system is None:
        raise ValueError("not a system email")
    template.subject, template.body, template.preheader = system.subject, system.body, ""
    template.format, template.kind = "markdown", "transactional"


def template_of(slug: str) -> EmailTemplate:
    """The stored system template (seeded by the migration; made again here if a database
    lost it, so a confirmation is never left unsent)."""
    found = db.session.scalar(select(EmailTemplate).where(EmailTemplate.system == slug))
    if found is not None:
        return found
    system = DEFAULTS[slug]
    taken = db.session.scalar(select(EmailTemplate.id).where(EmailTemplate.name == system.name))
    row = EmailTemplate(system=slug, name=system.name + (" (system)" if taken else ""),
                        subject=system.subject, body=system.body, kind="transactional",
                        format="markdown", preheader="")
    db.session.add(row)
    db.session.flush()
    return row


def answers_html(rows: Iterable[tuple[str, str]]) -> Markup:
    """Answers as a table of label and value, every value escaped."""
    cells = "".join(
        Markup('<tr><th scope="row" align="left" valign="top" style="padding:4px 12px 4px 0;'
               'color:#555">{}</th><td style="padding:4px 0">{}</td></tr>').format(
            label, Markup("<br>").join(escape(line) for line in value.splitlines() or [""]))
        for label, value in rows)
    return Markup('<table role="presentation">{}</table>').format(Markup(cells))


def answers_text(rows: Iterable[tuple[str, str]]) -> str:
    return "\n".join(f"{label}: {value}" for label, value in rows)


def extra_values(slug: str, answers: list[tuple[str, str]] | None = None,
                 **values: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The template's own names for its HTML part and for its text part."""
    names = DEFAULTS[slug].names
    found = {name: values.get(name, "") for name in names if name != "answers"}
    if "answers" not in names:
        return found, found
    return {**found, "answers": answers_html(answers or [])}, \
        {**found, "answers": answers_text(answers or [])}


def preview_values(template: EmailTemplate | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sample values of a system template's own names, for its preview and test."""
    system = spec(template)
    if system is None:
        return {}, {}
    return extra_values(system.slug, SAMPLE_ANSWERS, **SAMPLES)


def render(template: EmailTemplate, values: dict[str, Any],
           html_extra: dict[str, Any], text_extra: dict[str, Any]) -> rendering.RenderedEmail:
    """The email with these values; the text part with `text_extra` (answers as lines)."""
    email = rendering.compiled(template)
    rendered = email.render({**values, **html_extra})
    if text_extra is html_extra:
        return rendered
    return rendering.RenderedEmail(rendered.subject, rendered.html,
                                   email.render({**values, **text_extra}).text)


def send_system(slug: str, to: str, contact: Any, *, answers: list[tuple[str, str]] | None = None,
                headers: dict[str, str] | None = None, **values: str) -> None:
    """Queue system email `slug` to `to` (inside the caller's `write()`), personalised for
    `contact`, in the site's name from its sender."""
    site = rendering.site_values()
    base = {**rendering.contact_values(contact), **site, "unsubscribe_url": "",
            "preferences_url": ""}
    html_extra, text_extra = extra_values(slug, answers, **values)
    rendered = render(template_of(slug), base, html_extra, text_extra)
    send(to, rendered.subject, rendered.html, rendered.text,
         headers={"From": sender(site["site"]["name"]), **(headers or {})},
         contact_id=getattr(contact, "id", None))
