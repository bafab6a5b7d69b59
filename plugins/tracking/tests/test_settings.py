"""The tracking settings in the admin and the CLI: the page shows and keeps what is stored
(the privacy protections above all), changes are audited, and pages follow in every process."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.testing_forms import (
    form_as_shown,
    last_settings_audit,
    stored_settings,
    submit_settings,
)
from plugins.tracking.tests.helpers import signed_in


def test_the_settings_page_saved_unchanged_keeps_every_setting(app):
    owner = signed_in(app, "owner")
    before = stored_settings(app, "tracking")
    page = owner.get("/admin/plugins/tracking/settings").text
    submit_settings(owner, "tracking", form_as_shown(page))
    assert stored_settings(app, "tracking") == before
    assert last_settings_audit(app) == {"settings": "unchanged"}


def test_the_tracking_settings_page_shows_what_is_stored(app):
    """The reported case: both privacy boxes on, shown unticked, turned off by any save."""
    owner = signed_in(app, "owner")
    page = owner.get("/admin/plugins/tracking/settings").get_data(as_text=True)
    shown = dict(form_as_shown(page))
    assert shown.get("honour_dnt") == "y" and shown.get("filter_bots") == "y"
    submit_settings(owner, "tracking", [*{**shown, "retention_days": "90"}.items()])
    settings = stored_settings(app, "tracking")
    assert (settings["honour_dnt"], settings["filter_bots"], settings["retention_days"]) == (
        True, True, 90)
    assert last_settings_audit(app) == {"retention_days": {"old": 180, "new": 90}}
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
    submit_settings(owner, "tracking", [*shown, ("consent_mode", "y")])
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
    assert last_settings_audit(app) == {"consent_mode": {"old": False, "new": True},
                               "retention_days": {"old": 180, "new": 30}}
    shown = runner.invoke(main, ["plugins", "settings", "tracking"])
    assert "honour_dnt = True" in shown.output and "retention_days = 30" in shown.output
    refused = runner.invoke(main, ["plugins", "settings", "tracking", "retention_days=0"])
    assert refused.exit_code != 0 and "retention_days" in refused.output
    assert stored_settings(app, "tracking")["retention_days"] == 30
