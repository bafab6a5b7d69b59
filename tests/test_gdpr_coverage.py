"""GDPR export and erasure cover every place personal data is kept.

A recognisable person (each value they give carries a marker) fills in forms, gets the emails
those send and is seen by the site; then every column of every table is searched for what they
left. The export must show every such value, and after erasure none may be left anywhere.
"""
from __future__ import annotations

import json

from engine.contacts import gdpr
from engine.testing import traces_of
from tests.forms_support import forms_site, post

EMAIL = "zqcanary@example.com"
NEEDLES = ["zqcanary", "Zqfirst", "Zqlast", "Zqtitle", "Zqanswer", "7700900123", "203.0.113.77",
           "ZqAgent"]


def _a_recognisable_person(app, work) -> tuple[int, str]:
    client = app.test_client()
    headers = {"X-Forwarded-For": "203.0.113.77", "User-Agent": "ZqAgent/1.0"}
    webinar = {"email": EMAIL, "first_name": "Zqfirst", "last_name": "Zqlast",
               "phone": "+44 7700 900123", "job_title": "Zqtitle", "questions": "Zqanswer",
               "consent": "y"}
    assert post(client, "webinar", webinar, headers=headers).status_code == 303
    assert post(client, "newsletter", {"email": EMAIL, "first_name": "Zqfirst"},
                headers=headers).status_code == 303
    work(app)  # the owner's notification and the confirmation email are written to the mail log
    from sqlalchemy import select

    from engine.contacts.models import Contact
    from engine.db import db
    with app.app_context():
        contact_id = db.session.scalar(select(Contact.id).where(Contact.email == EMAIL))
    visitor = client.get_cookie("magnet_vid").value.split(".")[0]
    return contact_id, visitor


def test_export_shows_and_erasure_removes_every_trace_of_a_person(make_app, work):
    app = forms_site(make_app, TRUSTED_PROXIES=1)
    contact_id, visitor = _a_recognisable_person(app, work)
    needles = [*NEEDLES, visitor]
    before = traces_of(app, needles)
    assert {"contacts.email", "form_submissions.raw", "mail_messages.html",
            "mail_messages.to"} <= set(before)  # where this person is known to be kept
    with app.app_context():
        exported = json.dumps(gdpr.export_contact(contact_id), default=str).lower()
    unexported = sorted({place for place, values in before.items()
                         for needle in needles if any(needle.lower() in v.lower() for v in values)
                         and needle.lower() not in exported})
    assert unexported == []
    with app.app_context():
        gdpr.erase_contact(contact_id, actor="test")
    assert traces_of(app, needles) == {}


def test_hook_register_personal_data(make_app, make_plugins, work):
    folder = make_plugins(notes='''
        """Keeps a note per contact."""
        from engine.contacts.gdpr import PersonalData
        from engine.plugins import hookimpl
        DEFAULT_ENABLED = True
        NOTES = {}

        @hookimpl
        def register_personal_data():
            def export(person):
                return [NOTES[i] for i in person.contact_ids if i in NOTES]

            def erase(person):
                for i in person.contact_ids:
                    NOTES.pop(i, None)
            return [PersonalData("notes", export=export, erase=erase)]
    ''')
    app = forms_site(make_app, PLUGINS_PATH=str(folder))
    contact_id, _ = _a_recognisable_person(app, work)
    notes = app.extensions["magnet.plugins"].infos["notes"].module.NOTES
    notes[contact_id] = "calls on Thursdays"
    with app.app_context():
        assert gdpr.export_contact(contact_id)["notes"] == ["calls on Thursdays"]
        gdpr.erase_contact(contact_id, actor="test")
    assert notes == {}


def test_hook_on_contact_erased(make_app, make_plugins, work, tmp_path):
    """Called inside the erasure's transaction with the person's contacts and browsers."""
    heard = tmp_path / "erased"
    folder = make_plugins(listener=f'''
        """Hears about erasures."""
        import json
        from engine.plugins import hookimpl
        DEFAULT_ENABLED = True

        @hookimpl
        def on_contact_erased(contact_ids, visitor_ids):
            with open({str(heard)!r}, "w") as out:
                json.dump([contact_ids, visitor_ids], out)
    ''')
    app = forms_site(make_app, PLUGINS_PATH=str(folder))
    contact_id, visitor = _a_recognisable_person(app, work)
    with app.app_context():
        gdpr.erase_contact(contact_id, actor="test")
    assert json.loads(heard.read_text()) == [[contact_id], [visitor]]
