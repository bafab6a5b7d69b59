"""Admin → API keys and Event types (owners only): a key shown once, stored hashed, revoked at
once; custom event types declared, used by the API at once, and deleted; every change audited."""
from __future__ import annotations

import json
import logging
import re

import pytest
from sqlalchemy import select

from engine.api.models import ApiKey
from engine.audit import AuditEntry
from engine.db import db
from engine.events.models import CustomEventType
from engine.events.types import declare_custom
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


def test_a_key_is_shown_once_works_and_is_revoked(app, caplog):
    caplog.set_level(logging.DEBUG)
    owner = signed_in(app, "owner")
    assert owner.post("/admin/api-keys", data={"name": "Shop"}).status_code == 400  # no CSRF
    refused = owner.post("/admin/api-keys", data={"name": " ", "csrf_token": token_for(owner)})
    assert refused.status_code == 400 and "Give the key a name" in refused.get_data(as_text=True)
    created = owner.post("/admin/api-keys", data={"name": "Shop", "csrf_token": token_for(owner)})
    # redirect after the post: reloading the page the key is shown on creates nothing
    assert created.status_code == 302 and created.location.endswith("/admin/api-keys")
    assert "mgk_" not in created.location + created.get_data(as_text=True)
    shown = owner.get(created.location)
    html = shown.get_data(as_text=True)
    key = re.search(r'id="new-key" value="(mgk_[^"]+)"', html).group(1)
    assert "shown this once" in html and f"Authorization: Bearer {key}" in html
    assert "curl -X POST http://localhost/api/v1/events" in html
    assert "The key “Shop”" in html and shown.headers["Cache-Control"] == "no-store"
    assert key not in caplog.text
    with app.app_context():
        row = db.session.scalar(select(ApiKey))
        assert key not in (row.key_hash, row.prefix) and row.prefix == key[:12]
    listed = owner.get("/admin/api-keys").get_data(as_text=True)  # the reload
    assert key not in listed and f"{key[:12]}…" in listed and "Shop" in listed
    assert f"Revoke the key “Shop” ({key[:12]}…)?" in listed
    assert '<span class="badge badge-on">Active</span>' in listed
    with app.app_context():
        assert len(db.session.scalars(select(ApiKey)).all()) == 1
    twice = owner.post("/admin/api-keys", data={"name": " shop ", "csrf_token": token_for(owner)})
    assert twice.status_code == 400
    assert f"An active key is named “shop” already ({key[:12]}…)" in twice.get_data(as_text=True)
    event = {"email": "buyer@example.com", "type": "purchase", "properties": {"amount": 5}}
    assert send(app.test_client(), key, event).status_code == 202
    assert "No keys yet" not in owner.get("/admin/api-keys").get_data(as_text=True)
    revoked = owner.post(f"/admin/api-keys/{row.id}/revoke", data={"csrf_token": token_for(owner)},
                         follow_redirects=True).get_data(as_text=True)
    assert f"The key “Shop” ({key[:12]}…) is revoked" in revoked
    assert send(app.test_client(), key, event).status_code == 401
    listed = owner.get("/admin/api-keys").get_data(as_text=True)
    assert "Revoked</span>" in listed and "Active</span>" not in listed
    again = owner.post("/admin/api-keys", data={"name": "Shop", "csrf_token": token_for(owner)})
    assert again.status_code == 302  # the name is free once its key is revoked
    assert owner.post("/admin/api-keys/999/revoke",
                      data={"csrf_token": token_for(owner)}).status_code == 404
    assert audit_of(app, "api_key.")[:2] == [("api_key.create", "Shop", {"prefix": key[:12]}),
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
    assert send(client, key, event).status_code == 202  # the API knows it at once
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


def test_an_event_type_a_segment_uses_cannot_be_deleted(app):
    from engine.segments import service as segments
    with app.app_context():
        declare_custom("trial_started", "Started a trial", {"plan": "string"})
        for name in ("Trials", "Trials on pro"):
            segments.save(name, {"match": "all", "groups": [{"match": "all", "conditions": [
                {"kind": "activity", "event": "trial_started", "op": "at_least", "count": 1}]}]})
    owner = signed_in(app, "owner")
    refused = owner.post("/admin/event-types/trial_started/delete",
                         data={"csrf_token": token_for(owner)}, follow_redirects=True)
    text = refused.get_data(as_text=True)
    assert "Not deleted: the segments “Trials”, “Trials on pro” use “trial_started”" in text
    with app.app_context():
        assert db.session.get(CustomEventType, "trial_started") is not None
        for segment in segments.all_segments():
            segments.delete_segment(segment.id)
    owner.post("/admin/event-types/trial_started/delete", data={"csrf_token": token_for(owner)})
    with app.app_context():
        assert db.session.get(CustomEventType, "trial_started") is None
