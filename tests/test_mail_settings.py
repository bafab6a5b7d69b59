"""Mail settings in the admin: saved over the configuration, the password never shown back,
an untouched save changing nothing, and the test button sending through the saved server."""
from __future__ import annotations

import socket
from datetime import date

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from engine.audit import AuditEntry
from engine.db import db
from engine.mail import settings
from engine.mail.models import MailSetting
from tests.admin_helpers import csrf_token, form_as_shown, signed_in

PAGE = "/admin/mail/settings"
CONFIG = {"MAIL_HOST": "smtp.example.com", "MAIL_PORT": 587, "MAIL_USE_TLS": True,
          "MAIL_USERNAME": "site", "MAIL_PASSWORD": "config-secret",
          "MAIL_FROM": "News <news@example.com>", "MAIL_WARMUP": "day1=500, day2=1000"}


def _stored(app) -> dict:
    with app.app_context():
        return {row.key: row.value for row in db.session.scalars(select(MailSetting))}


def _audits(app) -> list:
    with app.app_context():
        return [e.details for e in db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "mail.settings"))]


def _fields(html: str, **changes: str) -> MultiDict:
    fields = MultiDict(form_as_shown(html, PAGE))
    for name, value in changes.items():
        fields[name] = value
    return fields


def test_saving_unchanged_changes_nothing_and_the_password_is_never_shown(make_app):
    app = make_app(**CONFIG)
    owner = signed_in(app, "owner")
    html = owner.get(PAGE).get_data(as_text=True)
    assert "config-secret" not in html and "Leave empty to keep the saved password" in html
    assert 'value="smtp.example.com"' in html and 'value="1:500, 2:1000"' in html
    answer = owner.post(PAGE, data=_fields(html))
    assert answer.status_code == 302
    assert _stored(app) == {} and _audits(app) == []  # nothing stored: still the config's
    with app.test_request_context():
        config = settings.transport_config()
    assert config == {"MAIL_HOST": "smtp.example.com", "MAIL_PORT": 587, "MAIL_USE_TLS": True,
                      "MAIL_USE_SSL": False, "MAIL_USERNAME": "site",
                      "MAIL_PASSWORD": "config-secret", "MAIL_FROM": "News <news@example.com>",
                      "MAIL_RATE_PER_SECOND": 0, "MAIL_RATE_PER_HOUR": 0,
                      "MAIL_WARMUP": [(1, 500), (2, 1000)], "MAIL_WARMUP_START": None}
    editor = signed_in(app, "editor")
    assert editor.get(PAGE).status_code in (302, 403)
    assert "Mail settings" not in editor.get("/admin/").get_data(as_text=True)


def test_changes_are_saved_audited_without_the_password_and_cleared(make_app):
    app = make_app(**CONFIG)
    owner = signed_in(app, "owner")
    html = owner.get(PAGE).get_data(as_text=True)
    answer = owner.post(PAGE, data=_fields(html, port="465", security="ssl",
                                           password="new-secret", rate_per_second="20"))
    assert answer.status_code == 302
    stored = _stored(app)
    assert stored["port"] == 465 and stored["security"] == "ssl"
    assert stored["rate_per_second"] == 20 and "host" not in stored
    assert "new-secret" not in str(stored["password"])  # encrypted at rest
    assert _audits(app) == [{"port": 465, "security": "ssl", "rate_per_second": 20,
                             "password": "changed"}]
    html = owner.get(PAGE).get_data(as_text=True)
    assert "new-secret" not in html and "(saved here)" in html
    with app.test_request_context():
        config = settings.transport_config()
    assert config["MAIL_USE_SSL"] and not config["MAIL_USE_TLS"]
    assert config["MAIL_PASSWORD"] == "new-secret"
    owner.post(PAGE, data=_fields(html))  # untouched again: the password stays
    with app.test_request_context():
        assert settings.transport_config()["MAIL_PASSWORD"] == "new-secret"
    owner.post(PAGE, data=_fields(html, clear_password="1"))
    with app.test_request_context():
        assert settings.transport_config()["MAIL_PASSWORD"] == ""
    assert _audits(app)[-1] == {"password": "cleared"}
    owner.post(PAGE, data=_fields(html, password="new-secret"))
    moved = owner.post(PAGE, data=_fields(html, host="smtp.elsewhere.example"),
                       follow_redirects=True).get_data(as_text=True)
    with app.test_request_context():  # the old server's password never goes to a new one
        assert settings.transport_config()["MAIL_PASSWORD"] == ""
    assert "password was cleared" in moved


def test_a_bad_value_saves_nothing(make_app):
    app = make_app(**CONFIG)
    owner = signed_in(app, "owner")
    html = owner.get(PAGE).get_data(as_text=True)
    for bad in ({"port": "70000"}, {"warmup": "1:500, 2:100"},
                {"host": "https://smtp.example.com"}, {"username": "a\r\nb"}):
        answer = owner.post(PAGE, data=_fields(html, **{"host": "other.example.com", **bad}))
        assert answer.status_code == 400
        assert "Nothing was saved" in answer.get_data(as_text=True)
    assert _stored(app) == {} and _audits(app) == []


def test_warmup_schedule():
    assert settings.parse_warmup("day1=500, 2:1000;4 : 5000") == [(1, 500), (2, 1000),
                                                                   (4, 5000)]
    for bad in ("1:500, 1:600", "two:3", "0:100"):
        with pytest.raises(settings.SettingsError):
            settings.parse_warmup(bad)
    config = {"MAIL_WARMUP": [(1, 500), (2, 1000), (4, 5000)],
              "MAIL_WARMUP_START": date(2026, 12, 1)}
    limits = [settings.warmup_limit(config, date(2026, 12, d)) for d in (1, 2, 3, 4, 5)]
    assert limits == [500, 1000, 1000, 5000, None]


def test_warmup_allowance_today(make_app, clock):
    app = make_app(MAIL_WARMUP="1:500, 3:2000", MAIL_WARMUP_START=clock.now().date().isoformat())
    with app.test_request_context():
        assert settings.warmup_allowance(clock.now()) == 500
    clock.advance(days=2)
    with app.test_request_context():
        assert settings.warmup_allowance(clock.now()) == 2000
    clock.advance(days=1)
    with app.test_request_context():
        assert settings.warmup_allowance(clock.now()) == 0  # the warm-up is over


def test_the_test_button_sends_with_the_saved_settings(make_app, smtp_server):
    app = make_app(**CONFIG)
    owner = signed_in(app, "owner")
    html = owner.get(PAGE).get_data(as_text=True)
    owner.post(PAGE, data=_fields(html, host=smtp_server.host, port=str(smtp_server.port),
                                  security="none", username="", clear_password="1"))
    test = {"csrf_token": csrf_token(html)}
    answer = owner.post(PAGE + "/test", data=test, follow_redirects=True)
    assert "A test email was sent to owner@example.com" in answer.get_data(as_text=True)
    assert [m["To"] for m in smtp_server.messages] == ["owner@example.com"]
    with socket.socket() as probe:  # a port nothing listens on: the error is shown plainly
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    owner.post(PAGE, data=_fields(owner.get(PAGE).get_data(as_text=True), port=str(closed)))
    answer = owner.post(PAGE + "/test", data=test, follow_redirects=True)
    text = answer.get_data(as_text=True)
    assert f"The test failed: could not send through 127.0.0.1:{closed}" in text
    assert "ConnectionRefusedError" in text and len(smtp_server.messages) == 1
