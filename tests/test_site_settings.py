"""Site settings in the admin: saved only when changed, audited, checked (colours' contrast,
zones, addresses, image URLs), applied to the public theme and the admin's times at once, kept
by `magnet content sync`, and the sender of the site's email."""
from __future__ import annotations

import re

import pytest
import yaml
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from engine import mail
from engine.audit import AuditEntry
from engine.content import service, sync
from engine.content.models import SiteSetting
from engine.db import db, write
from tests.admin_helpers import form_as_shown, signed_in

PAGE = "/admin/settings"
SEED = {"name": "Brightwater Studio", "tagline": "Marketing without jargon",
        "address": "14 Quay Street, Bristol", "same_as": ["https://example.com/brightwater"],
        "language": "en", "locale": "en_GB", "timezone": "Europe/London"}


def _stored(app) -> dict:
    with app.app_context():
        return {row.key: (row.value, row.set_in) for row in db.session.scalars(select(SiteSetting))}


def _audits(app) -> list:
    with app.app_context():
        return [e.details for e in db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "site.settings"))]


def _fields(html: str, **changes: str) -> MultiDict:
    fields = MultiDict(form_as_shown(html, PAGE))
    for name, value in changes.items():
        fields[name] = value
    return fields


@pytest.fixture
def seeded(make_app, smtp_server):
    app = make_app(**smtp_server.config, MAIL_FROM="Magnet <hello@brightwater.example>")
    with app.app_context():
        service.set_site_settings(SEED)
    return app


def test_saved_unchanged_then_changed_audited_and_shown_at_once(seeded):
    app = seeded
    owner = signed_in(app, "owner")
    visitor = app.test_client()
    assert "--brand-primary" not in visitor.get("/blog").get_data(as_text=True)  # cached now
    html = owner.get(PAGE).get_data(as_text=True)
    assert "data-media-picker" in html and '<option value="Europe/London" selected>' in html
    before = _stored(app)
    assert owner.post(PAGE, data=_fields(html)).status_code == 302
    assert _stored(app) == before and _audits(app) == []  # untouched: nothing stored
    answer = owner.post(PAGE, data=_fields(html, color_primary="#7A1FA2", tagline="New words",
                                           timezone="America/New_York"), follow_redirects=True)
    assert "Site settings saved" in answer.get_data(as_text=True)
    stored = _stored(app)
    assert stored["color_primary"] == ("#7a1fa2", "admin")
    assert stored["tagline"] == ("New words", "admin") and stored["name"] == before["name"]
    assert _audits(app) == [{"tagline": {"old": "Marketing without jargon", "new": "New words"},
                             "color_primary": {"old": "", "new": "#7a1fa2"},
                             "timezone": {"old": "Europe/London", "new": "America/New_York"}}]
    public = visitor.get("/blog").get_data(as_text=True)  # the cached page was dropped
    assert re.search(r'<html lang="en" style="--brand-primary:#7a1fa2;">', public)
    assert "New words" in public
    log = owner.get("/admin/audit").get_data(as_text=True)  # times in the site's zone
    assert re.search(r"\d\d:\d\d America/New_York</time>", log)


def test_bad_input_and_poor_contrast_save_nothing(seeded):
    app = seeded
    owner = signed_in(app, "owner")
    html = owner.get(PAGE).get_data(as_text=True)
    before = _stored(app)
    for bad, message in (
            ({"color_primary": "#ffcc00"}, "Button text (#ffffff) on the primary colour (#ffcc00): "
                                           "contrast 1.51:1"),
            ({"color_text": "#777777", "color_background": "#888888"},
             "The text colour (#777777) on the background (#888888): contrast 1.26:1"),
            ({"color_primary": "red;}body{x:y"}, "a hex colour like"),
            ({"timezone": "Mars/Olympus"}, "is not a time zone"),
            ({"sender_email": "news@example.com\r\nBcc: x@y.z"}, "one line"),
            ({"sender_email": "not-an-address"}, "an address like"),
            ({"logo": "javascript:alert(1)"}, "an https:// address"),
            ({"same_as": "https://ok.example\nhttp://plain.example"}, "is not an https://"),
            ({"language": "english please"}, "a language tag"),
            ({"name": "Two\nlines"}, "one line")):
        answer = owner.post(PAGE, data=_fields(html, tagline="Changed too", **bad))
        page = answer.get_data(as_text=True)
        assert answer.status_code == 400 and "Nothing was saved" in page
        assert message in page, (bad, page[-3000:])
    assert _stored(app) == before and _audits(app) == []
    assert signed_in(app, "editor").get(PAGE).status_code in (302, 403)


def test_sync_seeds_but_never_overwrites_the_admin(seeded, tmp_path):
    app = seeded
    owner = signed_in(app, "owner")
    html = owner.get(PAGE).get_data(as_text=True)
    owner.post(PAGE, data=_fields(html, tagline="Chosen in the admin"))
    folder = tmp_path / "content"
    folder.mkdir()
    (folder / "site.yaml").write_text(yaml.safe_dump(
        {**SEED, "name": "Renamed in the file", "tagline": "From the file", "footer": "New"}))
    with app.app_context():
        report = sync.sync(folder)
    assert report.conflicts == ["site settings tagline"]
    stored = _stored(app)
    assert stored["tagline"] == ("Chosen in the admin", "admin")
    assert stored["name"] == ("Renamed in the file", "file") and stored["footer"][0] == "New"
    with app.app_context():
        assert sync.sync(folder).conflicts == ["site settings tagline"]  # still kept
        sync.export(tmp_path / "out")
    assert yaml.safe_load((tmp_path / "out" / "site.yaml").read_text())["tagline"] == \
        "Chosen in the admin"
    with app.app_context():
        assert sync.sync(folder, force=True).conflicts == []
    assert _stored(app)["tagline"] == ("From the file", "file")


def test_the_sender_is_used_by_the_mail_sent(seeded, work, smtp_server):
    app = seeded
    owner = signed_in(app, "owner")
    html = owner.get(PAGE).get_data(as_text=True)
    assert "Magnet &lt;hello@brightwater.example&gt;" in html  # the configuration's, until set
    owner.post(PAGE, data=_fields(html, sender_name="Brightwater News",
                                  sender_email="news@brightwater.example"))
    mail_page = owner.get("/admin/mail/settings").get_data(as_text=True)
    assert "Brightwater News &lt;news@brightwater.example&gt;" in mail_page
    assert 'name="from"' not in mail_page  # one place for the sender
    with app.app_context():
        with write():
            mail.send("jane@example.com", "Hello", "<p>Hi</p>",
                      headers={"From": mail.sender(service.site_name())})
            mail.send("joe@example.com", "Plain", "<p>Hi</p>")
    work(app)
    assert [m["From"] for m in smtp_server.messages] == [
        "Brightwater News <news@brightwater.example>"] * 2
    assert all(e[0].endswith("@brightwater.example") for e in smtp_server.envelopes)
