"""Email templates: the list, the editor with its preview as a chosen contact, "send a test to
me", and delete. Editors write; viewers may look.

A template is checked when it is saved (`engine.mail.rendering.validate`): a broken one is
refused with "line N: reason" next to the field and nothing is stored, so a mailing never finds
out at send time. "Preview" shows the changes without saving them (the same form, another
button), so the page works without JavaScript.

The preview is the email as it will be sent, inside an `<iframe srcdoc>` with `sandbox` (no
scripts, its own origin), so nothing in an email can reach the admin. Its one `<style>` block
(media queries) is allowed by its hash in this page's Content-Security-Policy, nothing more.
"""
from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from flask import (
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from engine import audit, mail
from engine.admin.blueprint import bp
from engine.auth import require_role
from engine.contacts.models import Contact
from engine.contacts.service import (
    custom_fields,
)
from engine.db import db, write
from engine.mail import previews, rendering, system_emails
from engine.mail.models import EmailTemplate, Mailing
from engine.web import CONTENT_SECURITY_POLICY
from engine.web.ratelimit import limiter

KINDS = {"marketing": "Marketing", "transactional": "Transactional"}
SNAPSHOT = "snapshot"  # a frozen copy (see engine.mail.models.EmailTemplate.kind)
FORMAT_LABELS = {"markdown": "Markdown", "html": "HTML"}
TEST_LIMIT, TEST_WINDOW = 10, 600  # tests a person may send per window (seconds)
NAME_MAX = 150
STARTER = """# Hello {{ contact.first_name | default("there") }},

Write your email here, in Markdown. Personalise it with contact fields such as
{{ contact.job_title | default("your job title") }} or {{ company.name | default("your company") }},
and custom fields by their key.

[Visit us]({{ site.url }})
"""


@dataclass
class Draft:
    """The form's values, as posted or as stored."""

    name: str = ""
    kind: str = "marketing"
    subject: str = ""
    preheader: str = ""
    format: str = "markdown"
    body: str = STARTER
    errors: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, template: EmailTemplate) -> Draft:
        return cls(template.name, template.kind, template.subject, template.preheader or "",
                   template.format, template.body or "")

    @classmethod
    def posted(cls) -> Draft:
        form = request.form
        return cls(name=" ".join((form.get("name") or "").split()),
                   kind=form.get("kind") or "", subject=(form.get("subject") or "").strip(),
                   preheader=(form.get("preheader") or "").strip(),
                   format=form.get("format") or "",
                   body=(form.get("body") or "").replace("\r\n", "\n"))

    def check(self, template: EmailTemplate | None) -> bool:
        """Fill `errors`; True when the draft can be saved. A system email keeps its kind
        (transactional), knows its own names and must use the required ones."""
        template_id = template.id if template is not None else None
        system = system_emails.spec(template)
        if system is not None:
            self.kind = "transactional"
        errors: dict[str, list[str]] = {}
        if not self.name:
            errors["name"] = ["Give the template a name."]
        elif len(self.name) > NAME_MAX:
            errors["name"] = [f"At most {NAME_MAX} characters."]
        elif db.session.scalar(select(EmailTemplate.id).where(
                func.lower(EmailTemplate.name) == self.name.lower(),
                EmailTemplate.id != (template_id or 0))):
            errors["name"] = ["Another template has this name."]
        if self.kind not in KINDS:
            errors["kind"] = ["Choose marketing or transactional."]
        if self.format not in rendering.FORMATS:
            errors["format"] = ["Choose Markdown or HTML."]
        else:
            for problem in rendering.validate(subject=self.subject, preheader=self.preheader,
                                              body=self.body, format=self.format,
                                              extra_names=system.names if system else ()):
                errors.setdefault(problem.field, []).append(str(problem))
        for name in system_emails.missing_required(system, self.subject, self.body) \
                if system else []:
            errors.setdefault("body", []).append(
                f"this email must contain {{{{ {name} }}}}: {system.names[name]}")
        self.errors = errors
        return not errors


@dataclass
class Preview:
    who: str  # whom the preview is personalised for, in words
    note: str = ""  # why it is not the contact asked for
    subject: str = ""
    preheader: str = ""
    html: str = ""
    text: str = ""
    contact_id: int | None = None


def _chosen_contact() -> tuple[Contact | None, str, str]:
    return previews.contact_asked_for(request.values.get("contact") or "")


def _preview(email: rendering.CompiledEmail | None, contact: Contact | None, note: str,
             preheader: str = "", template: EmailTemplate | None = None) -> Preview:
    values, who = previews.values_for(contact, "#")
    preview = Preview(who=who, note=note, contact_id=contact.id if contact else None)
    if email is None:
        return preview
    html_extra, text_extra = system_emails.preview_values(template)
    try:
        rendered = email.render(values | html_extra)
        if text_extra is not html_extra:
            rendered = rendering.RenderedEmail(rendered.subject, rendered.html,
                                               email.render(values | text_extra).text)
        preview.preheader = rendering.render_line(preheader, values)
    except rendering.TemplateRenderError as exc:
        preview.note = f"This contact's values cannot be used in this template: {exc}"
        return preview
    preview.subject, preview.text = rendered.subject, rendered.text
    preview.html = previews.framed(rendered.html)
    return preview


def _page(template: EmailTemplate | None, draft: Draft, preview: Preview, typed: str,
          *, unsaved: bool = False, status: int = 200) -> Any:
    html = render_template("admin/mail_template_edit.html", template=template, draft=draft,
                           preview=preview, contact_typed=typed, unsaved=unsaved,
                           recent=previews.recent_contacts(), kinds=KINDS, formats=FORMAT_LABELS,
                           system=system_emails.spec(template),
                           can_edit=current_user.can("editor"), test_limit=TEST_LIMIT,
                           custom_keys=sorted(custom_fields()),
                           used_by=_used_by(template.id) if template is not None else [])
    response = current_app.make_response((html, status))
    allow_preview_styles(response, preview.html)
    return response


def _used_by(template_id: int) -> list[str]:
    """The first mailings sent with the template (four at most)."""
    return list(db.session.scalars(select(Mailing.key).where(
        Mailing.template_id == template_id).order_by(Mailing.id).limit(4)))


def allow_preview_styles(response: Any, html: str) -> None:
    """Let the preview's own `<style>` blocks (by hash) apply inside its frame, which shares
    this page's policy; everything else the policy forbids stays forbidden. (Public: any page
    that previews an email, a plugin's included, does it the same way.)"""
    policy = current_app.config.get("CONTENT_SECURITY_POLICY", CONTENT_SECURITY_POLICY)
    blocks = re.findall(r"<style[^>]*>(.*?)</style>", html, flags=re.S)
    if not policy or not blocks or "style-src 'self'" not in policy:
        return
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'"
        for b in blocks)
    response.headers["Content-Security-Policy"] = policy.replace(
        "style-src 'self'", f"style-src 'self' {hashes}", 1)


def _compile(draft: Draft) -> rendering.CompiledEmail | None:
    if draft.errors.keys() & {"subject", "preheader", "body", "format"}:
        return None
    return rendering.compile_email(subject=draft.subject, preheader=draft.preheader,
                                   body=draft.body, format=draft.format,
                                   marketing=draft.kind != "transactional")


def _editable_or_404(template_id: int) -> EmailTemplate:
    """A template an editor may open: not a snapshot (the frozen copy of an email as a
    campaign sent it, which must stay as it was)."""
    template = db.get_or_404(EmailTemplate, template_id)
    if template.kind == SNAPSHOT:
        abort(404)
    return template


@bp.get("/mail/templates")
@require_role("viewer")
def mail_templates_list() -> Any:
    templates = db.session.scalars(select(EmailTemplate).where(EmailTemplate.kind != SNAPSHOT)
                                   .order_by(func.lower(EmailTemplate.name)))
    return render_template("admin/mail_templates.html", templates=list(templates), kinds=KINDS)


@bp.get("/mail/templates/new")
@require_role("editor")
def mail_templates_new() -> Any:
    contact, typed, note = _chosen_contact()
    return _page(None, Draft(), _preview(None, contact, note), typed)


@bp.get("/mail/templates/<int:template_id>")
@require_role("viewer")
def mail_templates_edit(template_id: int) -> Any:
    template = _editable_or_404(template_id)
    contact, typed, note = _chosen_contact()
    return _page(template, Draft.of(template),
                 _preview(rendering.compiled(template), contact, note, template.preheader,
                          template), typed)


@bp.post("/mail/templates/new")
@require_role("editor")
def mail_templates_create() -> Any:
    return _save(None)


@bp.post("/mail/templates/<int:template_id>")
@require_role("editor")
def mail_templates_save(template_id: int) -> Any:
    return _save(_editable_or_404(template_id))


def _save(template: EmailTemplate | None) -> Any:
    """Save (then redirect), or show the draft's preview without saving ("Preview")."""
    draft = Draft.posted()
    contact, typed, note = _chosen_contact()
    valid = draft.check(template)
    if request.form.get("action") == "preview" or not valid:
        preview = _preview(_compile(draft), contact, note, draft.preheader, template)
        if not valid:
            flash("Fix what is marked below." if request.form.get("action") == "preview"
                  else "Not saved: fix what is marked below.", "error")
        return _page(template, draft, preview, typed, unsaved=True, status=200 if valid else 400)
    creating = template is None
    try:
        with write():
            row = template or EmailTemplate()
            changed = [] if creating else [
                name for name in ("name", "kind", "subject", "preheader", "format", "body")
                if getattr(row, name) != getattr(draft, name)]
            row.name, row.kind, row.subject = draft.name, draft.kind, draft.subject
            row.preheader, row.format, row.body = draft.preheader, draft.format, draft.body
            row.updated_by = current_user.email
            db.session.add(row)
            db.session.flush()
            audit.record(current_user, "mail_template.create" if creating
                         else "mail_template.update", row.name,
                         {"id": row.id, "kind": row.kind} if creating
                         else {"id": row.id, "changed": changed})
    except IntegrityError:  # the same name saved by someone else a moment ago
        draft.errors["name"] = ["Another template has this name."]
        return _page(template, draft, _preview(None, contact, note), typed, unsaved=True,
                     status=400)
    flash(f"Template “{row.name}” {'created' if creating else 'saved'}.")
    return redirect(url_for("admin.mail_templates_edit", template_id=row.id,
                            **({"contact": typed} if typed else {})))


@bp.post("/mail/templates/<int:template_id>/test")
@require_role("editor")
def mail_templates_test(template_id: int) -> Any:
    """The saved template, as the chosen contact (or the sample), to the signed-in person."""
    template = _editable_or_404(template_id)
    contact, typed, _note = _chosen_contact()
    back = redirect(url_for("admin.mail_templates_edit", template_id=template.id,
                            **({"contact": typed} if typed else {})))
    if not limiter().hit(f"mail-template-test:{current_user.id}", TEST_LIMIT, TEST_WINDOW):
        flash(f"Not sent: at most {TEST_LIMIT} tests every {TEST_WINDOW // 60} minutes. "
              "Try again in a few minutes.", "error")
        return back
    home = current_app.config.get("SITE_URL", "").rstrip("/")
    values, who = previews.values_for(contact, f"{home}/#email-test" if home else "#")
    try:
        rendered = system_emails.render(template, values,
                                        *system_emails.preview_values(template))
    except rendering.TemplateRenderError as exc:
        flash(f"Not sent: this contact's values cannot be used in this template ({exc}).",
              "error")
        return back
    with write():
        mail.send(current_user.email, f"[Test] {rendered.subject}", rendered.html,
                  rendered.text, headers={"From": mail.sender(values["site"]["name"])},
                  contact_id=contact.id if contact else None)
        audit.record(current_user, "mail_template.test", template.name,
                     {"id": template.id, "contact_id": contact.id if contact else None})
    flash(f"A test of “{template.name}”, as {who}, is on its way to {current_user.email}.")
    return back


@bp.post("/mail/templates/<int:template_id>/delete")
@require_role("editor")
def mail_templates_delete(template_id: int) -> Any:
    template = _editable_or_404(template_id)
    if template.system:
        flash(f"Not deleted: “{template.name}” is a system email the site sends itself. "
              "Reset it to undo your changes.", "error")
        return redirect(url_for("admin.mail_templates_edit", template_id=template.id))
    used = _used_by(template.id)
    if used:
        shown = ", ".join(used[:3]) + (" and more" if len(used) > 3 else "")
        flash(f"Not deleted: “{template.name}” is used by {shown}. A template a mailing "
              "was sent with stays, so its report can show what was sent.", "error")
        return redirect(url_for("admin.mail_templates_edit", template_id=template.id))
    name = template.name
    with write() as session:
        session.delete(session.get(EmailTemplate, template.id) or abort(404))
        audit.record(current_user, "mail_template.delete", name, {"id": template_id})
    flash(f"Template “{name}” deleted.")
    return redirect(url_for("admin.mail_templates_list"))


@bp.post("/mail/templates/<int:template_id>/reset")
@require_role("editor")
def mail_templates_reset(template_id: int) -> Any:
    """A system email back to the engine's text (its subject and body)."""
    template = _editable_or_404(template_id)
    if not template.system:
        abort(404)
    with write():
        old = {"subject": template.subject, "body": template.body}
        system_emails.reset(template)
        template.updated_by = current_user.email
        audit.record(current_user, "mail_template.reset", template.name,
                     {"id": template.id, "old": old,
                      "new": {"subject": template.subject, "body": template.body}})
    flash(f"“{template.name}” is back to the default text.")
    return redirect(url_for("admin.mail_templates_edit", template_id=template.id))
