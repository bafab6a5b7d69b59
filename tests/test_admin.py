"""The admin: role checks on every area, CSRF, caching headers, audit log, plugins, themes,
dashboard cards and plugin menu entries."""
from __future__ import annotations

import textwrap
import uuid

import pytest
from sqlalchemy import select

from tests.admin_helpers import csrf_token, signed_in, token_for

# (method, path, least role); POSTs carry a valid CSRF token so only the role decides.
AREAS = [
    ("GET", "/admin/", "viewer"),
    ("GET", "/admin/content", "editor"),
    ("POST", "/admin/content/new", "editor"),
    ("POST", "/admin/content/preview", "editor"),
    ("GET", "/admin/plugins", "owner"),
    ("POST", "/admin/plugins/nothing/enabled", "owner"),
    ("GET", "/admin/themes", "owner"),
    ("POST", "/admin/themes/activate", "owner"),
    ("GET", "/admin/users", "owner"),
    ("POST", "/admin/users", "owner"),
    ("POST", "/admin/users/1/role", "owner"),
    ("POST", "/admin/users/1/active", "owner"),
    ("GET", "/admin/audit", "owner"),
    ("GET", "/admin/segments", "viewer"),
    ("POST", "/admin/segments/new", "editor"),
    ("POST", "/admin/segments/count", "editor"),
    ("GET", "/admin/api-keys", "owner"),
    ("POST", "/admin/api-keys", "owner"),
    ("GET", "/admin/event-types", "owner"),
    ("POST", "/admin/event-types", "owner"),
]
RANK = {"viewer": 0, "editor": 1, "owner": 2}


def _request(client, method, path, token):
    if method == "GET":
        return client.get(path)
    return client.post(path, data={"csrf_token": token})


@pytest.mark.parametrize("role", ["viewer", "editor", "owner"])
def test_each_role_against_each_area(app, role):
    client = signed_in(app, role)
    token = token_for(client)
    for method, path, least in AREAS:
        response = _request(client, method, path, token)
        if RANK[role] >= RANK[least]:
            assert response.status_code not in (401, 403), (role, method, path)
        else:
            assert response.status_code == 403, (role, method, path, response.status_code)


def test_anonymous_visitors_reach_nothing(client):
    for method, path, _ in AREAS:
        response = client.get(path) if method == "GET" else client.post(path)
        assert response.status_code in (302, 400, 401), (method, path)
        if method == "GET":
            assert response.headers["Location"].startswith("/auth/login?next=")


def test_post_without_csrf_token_is_refused(app):
    client = signed_in(app, "owner")
    response = client.post("/admin/content/new", data={"kind": "post"})
    assert response.status_code == 400
    from engine.content.models import ContentItem
    from engine.db import db
    with app.app_context():
        assert db.session.scalar(select(ContentItem)
                                 .where(ContentItem.title == "Untitled post")) is None
    forged = client.post("/admin/content/new", data={"kind": "post", "csrf_token": "forged"})
    assert forged.status_code == 400


def test_admin_responses_are_never_cached(app):
    client = signed_in(app, "viewer")
    for path in ("/admin/", "/auth/login"):
        response = client.get(path)
        assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.both_backends
def test_admin_actions_are_audited_and_visible_to_owners(app):
    owner = signed_in(app, "owner")
    owner.post("/admin/themes/activate", data={"name": "no-such-theme",
                                               "csrf_token": token_for(owner)})
    owner.post("/admin/content/new", data={"kind": "page", "csrf_token": token_for(owner)})
    page = owner.get("/admin/audit").get_data(as_text=True)
    assert "content.create" in page and "owner@example.com" in page


# --- plugins ----------------------------------------------------------------------------------

PLUGIN = '''
"""Demo widget: greets visitors with a configurable word."""
from typing import Any

from flask import Blueprint, render_template_string
from wtforms import Form, StringField

from engine.admin import MenuItem
from engine.auth import require_role
from engine.plugins import current, hookimpl

__version__ = "1.2.3"

public = Blueprint("demo_widget", __name__, url_prefix="/demo-widget")
admin = Blueprint("demo_widget_admin", __name__, url_prefix="/admin/demo-widget")


class Settings(Form):
    greeting = StringField("Greeting", default="Hello")


@public.get("/")
def hello() -> str:
    return f"<p class=greeting>{current().settings('demo_widget')['greeting']} from the widget</p>"


@admin.get("/")
@require_role("editor")
def report() -> str:
    return render_template_string(
        '{% extends "admin/layout.html" %}{% block content %}<h1>Widget report</h1>{% endblock %}')


@hookimpl
def register_blueprints() -> list[Any]:
    return [public, admin]


@hookimpl
def register_settings() -> Any:
    return Settings


@hookimpl
def register_admin_menu() -> list[Any]:
    return [MenuItem("Widget report", "demo_widget_admin.report", "editor")]


@hookimpl
def register_dashboard_cards() -> list[Any]:
    return [lambda: "<p class=demo-card>Widget card: 42 greetings</p>", broken_card]


def broken_card() -> str:
    raise RuntimeError("the card broke")
'''


@pytest.fixture
def plugin_app(make_app, tmp_path):
    folder = tmp_path / f"magnet_admin_plugins_{uuid.uuid4().hex[:8]}"
    (folder / "demo_widget").mkdir(parents=True)
    (folder / "demo_widget" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    return make_app(PLUGINS_PATH=str(folder), fresh_db=True)  # the template knows other plugins


def test_owner_enables_configures_and_disables_a_plugin(plugin_app):
    app = plugin_app
    owner = signed_in(app, "owner")
    site = app.test_client()
    assert site.get("/demo-widget/").status_code == 404
    page = owner.get("/admin/plugins").get_data(as_text=True)
    assert "Demo widget" in page and "greets visitors" in page and "1.2.3" in page
    owner.post("/admin/plugins/demo_widget/enabled", data={"enabled": "1",
                                                           "csrf_token": token_for(owner)})
    assert "Hello from the widget" in site.get("/demo-widget/").get_data(as_text=True)
    form = owner.get("/admin/plugins/demo_widget/settings")
    owner.post("/admin/plugins/demo_widget/settings", data={
        "greeting": "Bonjour", "csrf_token": csrf_token(form.get_data(as_text=True))})
    assert "Bonjour from the widget" in site.get("/demo-widget/").get_data(as_text=True)
    owner.post("/admin/plugins/demo_widget/enabled", data={"enabled": "0",
                                                           "csrf_token": token_for(owner)})
    assert site.get("/demo-widget/").status_code == 404
    audit = owner.get("/admin/audit").get_data(as_text=True)
    assert "plugin.enable" in audit and "plugin.settings" in audit and "plugin.disable" in audit


def test_hook_register_admin_menu(plugin_app):
    app = plugin_app
    app.extensions["magnet.plugins"].set_enabled("demo_widget", True)
    editor = signed_in(app, "editor")
    page = editor.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/demo-widget/"' in page and "Widget report" in page
    report = editor.get("/admin/demo-widget/")
    assert report.status_code == 200 and "Widget report" in report.get_data(as_text=True)
    assert report.headers["Cache-Control"] == "no-store"  # a plugin's admin page too
    viewer = signed_in(app, "viewer")
    assert "Widget report" not in viewer.get("/admin/").get_data(as_text=True)
    assert viewer.get("/admin/demo-widget/").status_code == 403
    app.extensions["magnet.plugins"].set_enabled("demo_widget", False)
    assert "Widget report" not in editor.get("/admin/").get_data(as_text=True)


def test_hook_register_dashboard_cards(plugin_app):
    app = plugin_app
    viewer = signed_in(app, "viewer")
    assert "Widget card" not in viewer.get("/admin/").get_data(as_text=True)
    app.extensions["magnet.plugins"].set_enabled("demo_widget", True)
    page = viewer.get("/admin/")
    assert page.status_code == 200  # the broken card is left out, the page still renders
    assert "Widget card: 42 greetings" in page.get_data(as_text=True)
    owner = signed_in(app, "owner")
    assert "the card broke" in owner.get("/admin/plugins").get_data(as_text=True)


def test_themes_can_be_switched_by_owners(app):
    owner = signed_in(app, "owner")
    themes = app.extensions["magnet.themes"]
    names = sorted(themes.themes)
    assert names, "no themes installed"
    page = owner.get("/admin/themes").get_data(as_text=True)
    for name in names:
        assert name in page
    target = names[-1]
    owner.post("/admin/themes/activate", data={"name": target, "csrf_token": token_for(owner)})
    assert f"{target} is now the site" in owner.get("/admin/themes").get_data(as_text=True)
    assert themes.active.name == target


@pytest.mark.both_backends
def test_dashboard_counts_contacts_and_submissions(app):
    from datetime import timedelta

    from engine.contacts.models import Contact
    from engine.db import utcnow, write
    with app.app_context():
        with write() as session:
            session.add(Contact(email="new@example.com", created_at=utcnow()))
            session.add(Contact(email="old@example.com", created_at=utcnow() - timedelta(days=20)))
    viewer = signed_in(app, "viewer")
    page = viewer.get("/admin/").get_data(as_text=True)
    assert '<p class="stat">2</p><p class="stat-label" id="c-total">Contacts' in page
    assert '<p class="stat">1</p><p class="stat-label" id="c-new">New contacts this week' in page
    assert "<svg" in page and "New contacts per day" in page


def test_dashboard_figures_are_refreshed_by_a_periodic_job(app, work):
    from engine.contacts.models import Contact
    from engine.db import utcnow, write
    from engine.jobs import enqueue
    viewer = signed_in(app, "viewer")
    assert 'id="c-total">Contacts' in viewer.get("/admin/").get_data(as_text=True)
    with app.app_context():
        with write() as session:
            session.add(Contact(email="late@example.com", created_at=utcnow()))
    page = viewer.get("/admin/").get_data(as_text=True)
    assert '<p class="stat">0</p><p class="stat-label" id="c-total">' in page  # kept figures
    with app.app_context():
        enqueue("admin.dashboard_figures")
    work(app)
    page = viewer.get("/admin/").get_data(as_text=True)
    assert '<p class="stat">1</p><p class="stat-label" id="c-total">' in page
