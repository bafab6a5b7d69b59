"""`POST /api/v1/events` and `magnet events record`: events from shops, CRMs and scripts."""
from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from engine.api import keys
from engine.api.models import ApiKey
from engine.contacts.models import Contact
from engine.db import db
from engine.events.models import Activity

PATH = "/api/v1/events"


@pytest.fixture
def key(app) -> str:
    with app.app_context():
        return keys.create("Shop", None)[1]


def send(client, key: str | None, body, headers=None, content_type="application/json"):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post(PATH, data=data, content_type=content_type,
                       headers={**auth, **(headers or {})})


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.mark.both_backends
def test_an_event_for_a_new_address_creates_the_contact_with_consent_unknown(app, client, key):
    response = send(client, key, {"email": "Buyer@Example.com", "type": "purchase",
                                  "properties": {"order_id": "A-17", "amount": 49.5,
                                                 "currency": "GBP"},
                                  "occurred_at": "2026-11-30T10:00:00Z"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["created_contact"] is True and body["duplicate"] is False
    with app.app_context():
        contact = db.session.get(Contact, body["contact_id"])
        assert (contact.email, contact.consent) == ("buyer@example.com", "unknown")
        event = db.session.get(Activity, body["id"])
        assert event.type == "purchase" and event.properties["amount"] == 49.5
        assert event.occurred_at.isoformat().startswith("2026-11-30T10:00:00")
        assert db.session.get(ApiKey, 1).last_used_at is not None


def test_the_key_is_stored_hashed_and_a_revoked_key_is_refused_at_once(app, client, key):
    with app.app_context():
        row = db.session.scalar(select(ApiKey))
        assert key not in (row.key_hash, row.prefix) and row.prefix == key[:12]
    event = {"email": "a@example.com", "type": "purchase"}
    assert send(client, key, event).status_code == 201
    with app.app_context():
        keys.revoke(row.id)
    refused = send(client, key, event)
    assert refused.status_code == 401 and "API key" in refused.get_json()["error"]
    assert send(client, None, event).status_code == 401
    assert send(client, "mgk_" + "x" * 43, event).status_code == 401


@pytest.mark.parametrize("body,status,message", [
    ({"type": "purchase"}, 400, "“email” is required"),
    ({"email": "not an address", "type": "purchase"}, 400, "email"),
    ({"email": "a@example.com", "type": "no_such"}, 400, "Unknown event type"),
    ({"email": "a@example.com", "type": "form_submitted"}, 400, "recorded by the site itself"),
    ({"email": "a@example.com", "type": "purchase", "properties": {"amount": "ten"}}, 400,
     "must be a number"),
    ({"email": "a@example.com", "type": "purchase", "occurred_at": "yesterday"}, 400,
     "occurred_at"),
    ({"email": "a@example.com", "type": "purchase", "occurred_at": "2999-01-01T00:00:00Z"},
     400, "future"),
    ({"email": "a@example.com", "type": "purchase", "colour": "red"}, 400, "Unknown field"),
    (["a@example.com"], 400, "JSON object"),
    ("{not json", 400, "not valid JSON"),
])
def test_bad_input_gets_a_clear_error_and_changes_nothing(app, client, key, body, status,
                                                          message):
    response = send(client, key, body)
    assert response.status_code == status
    assert message in response.get_json()["error"]
    assert count(app, Activity) == 0 and count(app, Contact) == 0


def test_wrong_content_type_and_oversized_bodies_are_refused(app, client, key):
    assert send(client, key, "email=a@example.com", content_type="text/plain").status_code == 415
    big = {"email": "a@example.com", "type": "purchase", "properties": {"product": "x" * 900},
           "pad": "y" * 70_000}
    assert send(client, key, big).status_code == 413
    assert count(app, Activity) == 0


def test_a_chunked_body_over_the_limit_is_refused_too(app, key, live_server):
    host = urlsplit(live_server)
    connection = http.client.HTTPConnection(host.hostname, host.port, timeout=10)
    connection.putrequest("POST", PATH)
    connection.putheader("Authorization", f"Bearer {key}")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    chunk = b'{"email": "a@example.com", "type": "purchase", "x": "' + b"z" * 100_000 + b'"}'
    connection.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk))
    response = connection.getresponse()
    assert response.status in (400, 413)
    connection.close()
    assert count(app, Activity) == 0


@pytest.mark.both_backends
def test_an_idempotency_key_stores_a_retried_event_once(app, client, key):
    event = {"email": "a@example.com", "type": "purchase", "properties": {"order_id": "1"}}
    first = send(client, key, event, headers={"Idempotency-Key": "order-1"})
    again = send(client, key, event, headers={"Idempotency-Key": "order-1"})
    in_body = send(client, key, {**event, "idempotency_key": "order-1"})
    assert first.status_code == 201 and again.status_code == 200 == in_body.status_code
    assert again.get_json() == {**first.get_json(), "duplicate": True, "created_contact": False}
    assert count(app, Activity, Activity.type == "purchase") == 1
    assert send(client, key, event, headers={"Idempotency-Key": "order-2"}).status_code == 201


def test_each_key_is_rate_limited(make_app):
    app = make_app(API_RATE_LIMIT=3, API_RATE_WINDOW=60)
    with app.app_context():
        key = keys.create("Shop", None)[1]
    client = app.test_client()
    codes = [send(client, key, {"email": "a@example.com", "type": "purchase"}).status_code
             for _ in range(5)]
    assert codes == [201, 201, 201, 429, 429]


def test_cli_records_an_event_as_the_api_does(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["events", "record", "--email", "cli@example.com", "--type",
                                 "purchase", "--prop", "amount=12.5", "--prop", "order_id=9"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["created_contact"] is True
    with app.app_context():
        event = db.session.scalar(select(Activity).where(Activity.type == "purchase"))
        assert event.properties == {"amount": 12.5, "order_id": "9"}
    bad = runner.invoke(args=["events", "record", "--email", "cli@example.com", "--type",
                              "purchase", "--prop", "amount=lots"])
    assert bad.exit_code != 0 and "must be a number" in bad.output
    listed = runner.invoke(args=["events", "types"])
    assert "* purchase" in listed.output and "  form_submitted" in listed.output
