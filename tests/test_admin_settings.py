"""Plugin settings in the admin and the CLI: every form shows and keeps what is stored, changes
are audited with their old and new values, and pages follow at once in every process."""
from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from engine.testing_forms import (
    form_as_shown,
    last_settings_audit,
    stored_settings,
    submit_settings,
)
from tests.admin_helpers import signed_in

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


@pytest.fixture
def site(make_app, make_plugins):
    """A site with the plugin above (each plugin's own tests do the same for its settings)."""
    return make_app(PLUGINS_PATH=str(make_plugins(every_field=EVERY_FIELD)), fresh_db=True)


def test_every_settings_form_saved_unchanged_keeps_the_settings(site):
    manager = site.extensions["magnet.plugins"]
    with site.app_context():
        slugs = sorted(slug for slug in manager.infos if manager.settings_form_class(slug))
    assert slugs, "no plugin registers settings"
    owner = signed_in(site, "owner")
    for slug in slugs:
        before = stored_settings(site, slug)
        page = owner.get(f"/admin/plugins/{slug}/settings").get_data(as_text=True)
        with site.app_context():  # what the CLI starts from is what the page shows
            assert sorted(manager.settings_formdata(slug).items(multi=True)) == sorted(
                (n, v.replace("\r\n", "\n")) for n, v in form_as_shown(page)
                if n != "csrf_token"), slug
        submit_settings(owner, slug, form_as_shown(page))
        assert stored_settings(site, slug) == before, slug
        assert last_settings_audit(site) == {"settings": "unchanged"}, slug

        # Every checkbox turned over (and any password given): then saved unchanged again.
        shown = form_as_shown(page)
        boxes = {name for name, field in manager.settings_form(slug)._fields.items()
                 if field.type == "BooleanField"}
        ticked = {name for name, _ in shown if name in boxes}
        changed = [(n, v) for n, v in shown if n not in boxes] + [(n, "y") for n in boxes - ticked]
        secrets = [name for name, field in manager.settings_form(slug)._fields.items()
                   if field.type == "PasswordField"]
        changed = [(n, "s3cret" if n in secrets else v) for n, v in changed]
        submit_settings(owner, slug, changed)
        after = stored_settings(site, slug)
        assert {n for n in boxes if after[n] != before[n]} == boxes, slug
        details = last_settings_audit(site)
        assert {n: details[n] for n in boxes} == {
            n: {"old": before[n], "new": after[n]} for n in boxes}, slug
        for name in secrets:
            assert after[name] == "s3cret" and details[name] == "changed (not shown)"
            assert "s3cret" not in owner.get("/admin/audit").get_data(as_text=True)
        page = owner.get(f"/admin/plugins/{slug}/settings").get_data(as_text=True)
        submit_settings(owner, slug, form_as_shown(page))
        assert stored_settings(site, slug) == after, slug  # passwords kept though never shown
        assert last_settings_audit(site) == {"settings": "unchanged"}, slug


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
