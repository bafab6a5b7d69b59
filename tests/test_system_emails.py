"""System emails: the double opt-in confirmation and the submission notice are templates an
editor changes in Admin → Email; a form sends what they say, in the site's name."""
from __future__ import annotations

import re

from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from engine.content import service as content
from engine.db import db
from engine.mail.models import EmailTemplate
from engine.mail.system_emails import CONFIRMATION, DEFAULTS
from tests.admin_helpers import form_as_shown, signed_in, token_for
from tests.forms_support import forms_site, post


def _template(app, slug):
    with app.app_context():
        row = db.session.scalar(select(EmailTemplate).where(EmailTemplate.system == slug))
        return row.id, row.subject, row.body


def _edit(client, template_id, **changes):
    path = f"/admin/mail/templates/{template_id}"
    fields = MultiDict(form_as_shown(client.get(path).get_data(as_text=True), path))
    for name, value in changes.items():
        fields[name] = value
    fields["action"] = "save"
    return client.post(path, data=fields)


def test_an_edited_confirmation_is_what_a_sign_up_gets(make_app, smtp_server, work):
    app = forms_site(make_app, **smtp_server.config, SITE_URL="http://site.test",
                     MAIL_FROM="Magnet <hello@site.test>")
    with app.app_context():
        content.set_site_settings({"name": "Brightwater", "sender_email": "news@site.test"})
        from engine.forms import service
        service.save({"slug": "contact", "title": "Contact us", "notify": ["owner@site.test"],
                      "fields": [{"name": "email", "type": "email", "label": "Your email"},
                                 {"name": "message", "type": "textarea",
                                  "label": "Your message"}]})
    editor = signed_in(app, "editor")
    listing = editor.get("/admin/mail/templates").get_data(as_text=True)
    assert "Subscription confirmation" in listing and "Form submission notice" in listing
    template_id, _subject, _body = _template(app, CONFIRMATION)
    answer = _edit(editor, template_id, subject="One click for {{ site.name }}",
                   body='Hi {{ contact.first_name | default("there") }}, one click left for '
                        "{{ lists }}: [yes, sign me up]({{ confirm_url }})")
    assert answer.status_code == 302
    token = {"csrf_token": token_for(editor)}
    refused = editor.post(f"/admin/mail/templates/{template_id}/delete", data=token,
                          follow_redirects=True)
    assert "is a system email" in refused.get_data(as_text=True)

    client = app.test_client()
    post(client, "newsletter", {"email": "jane@example.com", "first_name": "Jane <b>"})
    post(app.test_client(), "contact", {"email": "joe@example.com",
                                        "message": "Call me\n<script>x"})
    work(app)
    by_to = {m["To"]: m for m in smtp_server.messages}
    confirmation = by_to["jane@example.com"]
    assert confirmation["Subject"] == "One click for Brightwater"
    assert confirmation["From"] == "Brightwater <news@site.test>"
    html = confirmation.get_body(("html",)).get_content()
    assert "Hi Jane &lt;b&gt;, one click left for the “newsletter” emails:" in html
    link = re.search(r'href="http://site\.test(/forms/confirm/[^"]+)"', html).group(1)
    assert "You are subscribed" in client.post(link).get_data(as_text=True)
    notice = by_to["owner@site.test"]
    assert notice["Subject"] == "New submission of Contact us on Brightwater"
    assert notice["Reply-To"] == "joe@example.com"
    html = notice.get_body(("html",)).get_content()
    assert "Your message" in html and "Call me<br>&lt;script&gt;x" in html
    assert re.search(r'href="http://site\.test/admin/contacts/\d+"', html)
    text = notice.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "Your message: Call me\n<script>x" in text

    reset = editor.post(f"/admin/mail/templates/{template_id}/reset", data=token,
                        follow_redirects=True)
    assert "back to the default text" in reset.get_data(as_text=True)
    assert _template(app, CONFIRMATION)[1:] == (DEFAULTS[CONFIRMATION].subject,
                                                 DEFAULTS[CONFIRMATION].body)


def test_a_confirmation_without_its_link_is_refused(make_app):
    app = make_app()
    editor = signed_in(app, "editor")
    template_id, subject, body = _template(app, CONFIRMATION)
    answer = _edit(editor, template_id, body="Hello! Please confirm somewhere.")
    assert answer.status_code == 400
    assert "must contain {{ confirm_url }}" in answer.get_data(as_text=True)
    assert _template(app, CONFIRMATION) == (template_id, subject, body)
