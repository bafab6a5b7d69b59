"""Admin → API keys and Event types (owners only): a key shown once, stored hashed, revoked at
once; custom event types declared, used by the API at once, and deleted; every change audited."""
from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from engine.api.models import ApiKey
from engine.audit import AuditEntry
from engine.db import db
from engine.events.models import CustomEventType
from tests.admin_helpers import signed_in, token_for


def audit_of(app, prefix):
    with app.app_context():
        return [(e.action, e.target, e.details) for e in db.session.scalars(
            select(AuditEntry).where(AuditEntry.action.startswith(prefix)).order_by(AuditEntry.id))]


def send(client, key, event):
    return client.post("/api/v1/events", data=json.dumps(event), content_type="application/json",
                       headers={"Authorization": f"Bearer {key}"})


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_only_owners_reach_keys_and_event_types(app, role):
    client = signed_in(app, role)
    token = token_for(client)
    assert client.get("/admin/api-keys").status_code == 403
    assert client.get("/admin/event-types").status_code == 403
    for path in ("/admin/api-keys", "/admin/api-keys/1/revoke", "/admin/event-types",
                 "/admin/event-types/trial_started/delete"):
        assert client.post(path, data={"csrf_token": token, "name": "x"}).status_code == 403
    menu = client.get("/admin/").get_data(as_text=True)
    assert "API keys" not in menu and "Event types" not in menu


def test_a_key_is_shown_once_works_and_is_revoked(app):
    owner = signed_in(app, "owner")
    assert owner.post("/admin/api-keys", data={"name": "Shop"}).status_code == 400  # no CSRF
    refused = owner.post("/admin/api-keys", data={"name": " ", "csrf_token": token_for(owner)})
    assert refused.status_code == 400 and "Give the key a name" in refused.get_data(as_text=True)
    created = owner.post("/admin/api-keys", data={"name": "Shop", "csrf_token": token_for(owner)})
    html = created.get_data(as_text=True)
    key = re.search(r'id="new-key" value="(mgk_[^"]+)"', html).group(1)
    assert "shown this once" in html and f"Authorization: Bearer {key}" in html
    assert "curl -X POST http://localhost/api/v1/events" in html
    assert created.headers["Cache-Control"] == "no-store"
    with app.app_context():
        row = db.session.scalar(select(ApiKey))
        assert key not in (row.key_hash, row.prefix) and row.prefix == key[:12]
    listed = owner.get("/admin/api-keys").get_data(as_text=True)
    assert key not in listed and f"{key[:12]}…" in listed and "Shop" in listed
    event = {"email": "buyer@example.com", "type": "purchase", "properties": {"amount": 5}}
    assert send(app.test_client(), key, event).status_code == 201
    assert "No keys yet" not in owner.get("/admin/api-keys").get_data(as_text=True)
    owner.post(f"/admin/api-keys/{row.id}/revoke", data={"csrf_token": token_for(owner)})
    assert send(app.test_client(), key, event).status_code == 401
    assert "revoked" in owner.get("/admin/api-keys").get_data(as_text=True)
    assert owner.post("/admin/api-keys/999/revoke",
                      data={"csrf_token": token_for(owner)}).status_code == 404
    assert audit_of(app, "api_key.") == [("api_key.create", "Shop", {"prefix": key[:12]}),
                                         ("api_key.revoke", "Shop", {"prefix": key[:12]})]


def test_an_owner_declares_an_event_type_the_api_accepts_then_deletes_it(app):
    from engine.api import keys
    with app.app_context():
        key = keys.create("CRM", None)[1]
    event = {"email": "t@example.com", "type": "trial_started", "properties": {"plan": "pro"}}
    client = app.test_client()
    assert send(client, key, event).status_code == 400  # unknown type
    owner = signed_in(app, "owner")
    form = {"csrf_token": token_for(owner), "name": "trial_started", "label": "Started a trial",
            "description": "From the billing system", "property_rows": "3",
            "p-0-name": "plan", "p-0-type": "string", "p-1-name": "seats", "p-1-type": "number",
            "p-2-name": "", "p-2-type": "string"}
    for bad, message in [({"name": "Trial Started"}, "lower-case letters"),
                         ({"name": "purchase"}, "“purchase” is declared already."),
                         ({"label": ""}, "Give the event type a label"),
                         ({"p-1-name": "plan"}, "The property “plan” is named twice."),
                         ({"p-1-name": "Seats!"}, "cannot be a property"),
                         ({"p-1-type": "colour"}, "choose a type")]:
        refused = owner.post("/admin/event-types", data={**form, **bad})
        text = refused.get_data(as_text=True)
        assert refused.status_code == 400 and message in text, (bad, text[:200])
        assert f'value="{ {**form, **bad}["name"]}"' in text  # what was typed stays
    more = owner.post("/admin/event-types", data={**form, "action": "more"})
    assert 'name="p-5-name"' in more.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(CustomEventType)) is None
    assert owner.post("/admin/event-types", data=form).status_code == 302
    assert send(client, key, event).status_code == 201  # the API knows it at once
    assert send(client, key, {**event, "properties": {"seats": "two"}}).status_code == 400
    page = owner.get("/admin/event-types").get_data(as_text=True)
    assert "Started a trial" in page and "<code>seats</code> <span class=\"muted\">number" in page
    assert "Viewed a page" in page or "Submitted a form" in page  # the declared ones too
    assert owner.post("/admin/event-types/purchase/delete",
                      data={"csrf_token": token_for(owner)}).status_code == 404  # the engine's
    owner.post("/admin/event-types/trial_started/delete", data={"csrf_token": token_for(owner)})
    assert send(client, key, event).status_code == 400
    assert [(a, t) for a, t, _ in audit_of(app, "event_type.")] == [
        ("event_type.create", "trial_started"), ("event_type.delete", "trial_started")]
    assert audit_of(app, "event_type.create")[0][2] == {
        "label": "Started a trial", "properties": {"plan": "string", "seats": "number"}}
