"""Plugin settings in the admin and the CLI: every form shows and keeps what is stored, changes
are audited with their old and new values, and pages follow at once in every process."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from tests.admin_helpers import form_as_shown, signed_in

# A plugin with one field of every kind WTForms offers for settings, so the round trip below
# covers them all whatever the installed plugins use.
EVERY_FIELD = '''
"""Has a settings field of every kind."""
from typing import Any

import wtforms
from wtforms import validators
from wtforms.fields.choices import SelectChoice as C

from engine.plugins import hookimpl


class Settings(wtforms.Form):
    on_by_default = wtforms.BooleanField("On", default=True)
    off_by_default = wtforms.BooleanField("Off", default=False)
    word = wtforms.StringField("Word", default="caf\\u00e9 & <b>")
    text = wtforms.TextAreaField("Text", default="\\nfirst line\\nsecond line")
    number = wtforms.IntegerField("Number", default=7, validators=[validators.InputRequired()])
    ratio = wtforms.FloatField("Ratio", default=0.5)
    choice = wtforms.SelectField("Choice", default="b", choices=[C("a", "A"), C("b", "B")])
    level = wtforms.SelectField("Level", default=2, coerce=int, choices=[C(1, "One"), C(2, "Two")])
    many = wtforms.SelectMultipleField("Many", default=["x", "z"],
                                       choices=[C("x", "X"), C("y", "Y"), C("z", "Z")])
    radio = wtforms.RadioField("Radio", default="n", choices=[C("m", "M"), C("n", "N")])
    secret = wtforms.PasswordField("Secret", default="")


@hookimpl
def register_settings() -> Any:
    return Settings
'''


@pytest.fixture(params=["installed", "every_field"])
def site(request, make_app, make_plugins):
    """The installation's own plugins, then a folder with the plugin above."""
    if request.param == "installed":
        return make_app()
    return make_app(PLUGINS_PATH=str(make_plugins(every_field=EVERY_FIELD)), fresh_db=True)


def stored(app, slug):
    with app.app_context():
        manager = app.extensions["magnet.plugins"]
        manager.refresh(force=True)
        return manager.settings(slug)


def last_audit(app):
    from engine.audit import AuditEntry
    from engine.db import db
    with app.app_context():
        entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "plugin.settings")
                                   .order_by(AuditEntry.id.desc()).limit(1)).first()
        return entry.details if entry else None


def submit(owner, slug, fields):
    answer = owner.post(f"/admin/plugins/{slug}/settings", data=MultiDict(fields))
    assert answer.status_code == 302, answer.get_data(as_text=True)[-2000:]


def test_every_settings_form_saved_unchanged_keeps_the_settings(site):
    manager = site.extensions["magnet.plugins"]
    with site.app_context():
        slugs = sorted(slug for slug in manager.infos if manager.settings_form_class(slug))
    assert slugs, "no plugin registers settings"
    owner = signed_in(site, "owner")
    for slug in slugs:
        before = stored(site, slug)
        page = owner.get(f"/admin/plugins/{slug}/settings").get_data(as_text=True)
        with site.app_context():  # what the CLI starts from is what the page shows
            assert sorted(manager.settings_formdata(slug).items(multi=True)) == sorted(
                (n, v.replace("\r\n", "\n")) for n, v in form_as_shown(page)
                if n != "csrf_token"), slug
        submit(owner, slug, form_as_shown(page))
        assert stored(site, slug) == before, slug
        assert last_audit(site) == {"settings": "unchanged"}, slug

        # Every checkbox turned over (and any password given): then saved unchanged again.
        shown = form_as_shown(page)
        boxes = {name for name, field in manager.settings_form(slug)._fields.items()
                 if field.type == "BooleanField"}
        ticked = {name for name, _ in shown if name in boxes}
        changed = [(n, v) for n, v in shown if n not in boxes] + [(n, "y") for n in boxes - ticked]
        secrets = [name for name, field in manager.settings_form(slug)._fields.items()
                   if field.type == "PasswordField"]
        changed = [(n, "s3cret" if n in secrets else v) for n, v in changed]
        submit(owner, slug, changed)
        after = stored(site, slug)
        assert {n for n in boxes if after[n] != before[n]} == boxes, slug
        details = last_audit(site)
        assert {n: details[n] for n in boxes} == {
            n: {"old": before[n], "new": after[n]} for n in boxes}, slug
        for name in secrets:
            assert after[name] == "s3cret" and details[name] == "changed (not shown)"
            assert "s3cret" not in owner.get("/admin/audit").get_data(as_text=True)
        page = owner.get(f"/admin/plugins/{slug}/settings").get_data(as_text=True)
        submit(owner, slug, form_as_shown(page))
        assert stored(site, slug) == after, slug  # passwords kept though never shown
        assert last_audit(site) == {"settings": "unchanged"}, slug


def test_the_tracking_settings_page_shows_what_is_stored(app):
    """The reported case: both privacy boxes on, shown unticked, turned off by any save."""
    owner = signed_in(app, "owner")
    page = owner.get("/admin/plugins/tracking/settings").get_data(as_text=True)
    shown = dict(form_as_shown(page))
    assert shown.get("honour_dnt") == "y" and shown.get("filter_bots") == "y"
    submit(owner, "tracking", [*{**shown, "retention_days": "90"}.items()])
    settings = stored(app, "tracking")
    assert (settings["honour_dnt"], settings["filter_bots"], settings["retention_days"]) == (
        True, True, 90)
    assert last_audit(app) == {"retention_days": {"old": 180, "new": 90}}
    audit_page = owner.get("/admin/audit").get_data(as_text=True)
    assert "retention_days: 180 → 90" in audit_page


@pytest.mark.both_backends
def test_changing_consent_mode_in_the_admin_changes_cached_pages_in_every_process(
        make_app, monkeypatch):
    from engine.web import generation
    monkeypatch.setattr(generation, "TTL", 0)  # the other process looks at once
    app = make_app()
    other = make_app(instance=Path(app.instance_path),
                     SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
                     PLUGIN_STATE_REFRESH_SECONDS=3600)  # a process that rarely re-reads
    visitors = [app.test_client(), other.test_client()]
    for visitor in visitors:
        visitor.get("/")
        page = visitor.get("/")
        assert page.headers["X-Magnet-Cache"] == "hit" and "consent.js" not in page.text
    owner = signed_in(app, "owner")
    shown = form_as_shown(owner.get("/admin/plugins/tracking/settings").text)
    submit(owner, "tracking", [*shown, ("consent_mode", "y")])
    for visitor in visitors:
        page = visitor.get("/")
        assert "consent.js" in page.text and 'data-c="1"' in page.text


def test_the_cli_changes_settings_like_the_admin(app):
    client = app.test_client()
    client.get("/")
    assert "consent.js" not in client.get("/").text
    from engine.cli import main
    runner = app.test_cli_runner()
    result = runner.invoke(main, ["plugins", "settings", "tracking", "consent_mode=on",
                                  "retention_days=30"])
    assert result.exit_code == 0, result.output
    assert "consent_mode: False -> True" in result.output
    assert "consent.js" in client.get("/").text
    assert last_audit(app) == {"consent_mode": {"old": False, "new": True},
                               "retention_days": {"old": 180, "new": 30}}
    shown = runner.invoke(main, ["plugins", "settings", "tracking"])
    assert "honour_dnt = True" in shown.output and "retention_days = 30" in shown.output
    refused = runner.invoke(main, ["plugins", "settings", "tracking", "retention_days=0"])
    assert refused.exit_code != 0 and "retention_days" in refused.output
    assert stored(app, "tracking")["retention_days"] == 30


RECORDER = '''
"""Records settings changes, and whether they run inside the transaction that stores them."""
from typing import Any

import wtforms

from engine.db import WRITING, db
from engine.plugins import hookimpl

HEARD = []


class Settings(wtforms.Form):
    colour = wtforms.StringField("Colour", default="blue")


@hookimpl
def register_settings() -> Any:
    return Settings


@hookimpl
def on_plugin_settings_changed(slug, changes):
    HEARD.append((slug, changes, bool(db.session.info.get(WRITING))))
'''


def test_hook_on_plugin_settings_changed(make_app, make_plugins):
    app = make_app(PLUGINS_PATH=str(make_plugins(recorder=RECORDER)), fresh_db=True)
    manager = app.extensions["magnet.plugins"]
    manager.set_enabled("recorder", True)
    heard = manager.infos["recorder"].module.HEARD
    with app.app_context():
        manager.save_settings("recorder", MultiDict({"colour": "blue"}))
        assert heard == []  # nothing changed
        manager.save_settings("recorder", MultiDict({"colour": "red"}))
    assert heard == [("recorder", {"colour": ("blue", "red")}, True)]
