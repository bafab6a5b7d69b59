"""`POST /api/v1/events` and `magnet events record`: events from shops, CRMs and scripts.

The API answers 202 once an event is in the intake; `drain` (what the drain job does) stores
its contact and event."""
from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from engine.api import keys
from engine.api.models import ApiKey, IntakeRow
from engine.contacts.models import Contact
from engine.db import db
from engine.events.models import Activity
from engine.testing import drain_intake as drain

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
    assert response.status_code == 202, response.get_json()
    assert response.get_json() == {"id": 1, "status": "accepted", "duplicate": False}
    assert count(app, Contact) == 0 and count(app, Activity) == 0  # not stored yet
    assert drain(app) == 1
    with app.app_context():
        contact = db.session.scalar(select(Contact))
        assert (contact.email, contact.consent) == ("buyer@example.com", "unknown")
        event = db.session.scalar(select(Activity).where(Activity.type == "purchase"))
        assert event.contact_id == contact.id and event.properties["amount"] == 49.5
        assert event.occurred_at.isoformat().startswith("2026-11-30T10:00:00")
        assert db.session.get(ApiKey, 1).last_used_at is not None
    assert count(app, IntakeRow) == 0  # no idempotency key: nothing to remember it for
    assert drain(app) == 0 and count(app, Activity, Activity.type == "purchase") == 1


def test_the_key_is_stored_hashed_and_a_revoked_key_is_refused_at_once(app, client, key):
    with app.app_context():
        row = db.session.scalar(select(ApiKey))
        assert key not in (row.key_hash, row.prefix) and row.prefix == key[:12]
    event = {"email": "a@example.com", "type": "purchase"}
    assert send(client, key, event).status_code == 202
    with app.app_context():
        keys.revoke(row.id)
    revoked = send(client, key, event)
    unknown = send(client, "mgk_" + "x" * 43, event)
    missing = send(client, None, event)
    assert revoked.status_code == unknown.status_code == missing.status_code == 401
    # a key was sent: it is not valid, in the same words whether it never existed or was revoked
    assert "not valid" in revoked.get_json()["error"]
    assert revoked.get_json() == unknown.get_json()
    assert revoked.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert "is required" in missing.get_json()["error"]
    assert "is required" not in revoked.get_json()["error"]


def test_other_methods_get_json_405_naming_post(app, client, key):
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        answer = client.open(PATH, method=method, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 405, method
        assert answer.headers["Allow"] == "POST" and answer.is_json
        assert "POST" in answer.get_json()["error"]
    head = client.head(PATH)
    assert head.status_code == 405 and head.headers["Allow"] == "POST" and head.data == b""
    assert count(app, Activity) == 0


@pytest.mark.parametrize("body,status,message", [
    ({"type": "purchase"}, 400, "“email” is required"),
    ({"email": "a@example.com"}, 400, "“type” is required"),
    ({"email": "a@example.com", "type": "purchase", "idempotency_key": ""}, 400,
     "idempotency key is 1 to 200"),
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
    assert count(app, IntakeRow) == 0
    drain(app)
    assert count(app, Activity) == 0 and count(app, Contact) == 0


def test_wrong_content_type_and_oversized_bodies_are_refused(app, client, key):
    assert send(client, key, "email=a@example.com", content_type="text/plain").status_code == 415
    big = {"email": "a@example.com", "type": "purchase", "properties": {"product": "x" * 900},
           "pad": "y" * 70_000}
    assert send(client, key, big).status_code == 413
    assert count(app, IntakeRow) == 0


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
    assert count(app, IntakeRow) == 0


@pytest.mark.both_backends
def test_an_idempotency_key_stores_a_retried_event_once(app, client, key):
    """A repeat before the drain answers with the first request's intake id; after it, with
    the event's and contact's ids too."""
    event = {"email": "a@example.com", "type": "purchase", "properties": {"order_id": "1"}}
    first = send(client, key, event, headers={"Idempotency-Key": "order-1"})
    again = send(client, key, event, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == 202 and again.status_code == 200
    assert again.get_json() == {**first.get_json(), "duplicate": True}
    drain(app)
    in_body = send(client, key, {**event, "idempotency_key": "order-1"})
    assert in_body.status_code == 200
    with app.app_context():
        stored = db.session.scalar(select(Activity).where(Activity.type == "purchase"))
    assert in_body.get_json() == {"id": first.get_json()["id"], "status": "stored",
                                  "duplicate": True, "event_id": stored.id,
                                  "contact_id": stored.contact_id}
    drain(app)
    assert count(app, Activity, Activity.type == "purchase") == 1
    assert send(client, key, event, headers={"Idempotency-Key": "order-2"}).status_code == 202
    drain(app)
    assert count(app, Activity, Activity.type == "purchase") == 2


@pytest.mark.both_backends
def test_an_idempotency_key_reused_for_another_event_is_refused(app, client, key):
    event = {"email": "a@example.com", "type": "purchase",
             "properties": {"order_id": "1", "amount": 10}, "occurred_at": "2026-11-30T10:00:00Z"}
    first = send(client, key, event, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == 202
    # the same event, written otherwise (key order, spacing, time zone, the address's case)
    same = ('{"occurred_at": "2026-11-30T11:00:00+01:00", "type": "purchase", "properties": '
            '{"amount": 10, "order_id": "1"},   "email": "A@Example.com"}')
    assert send(client, key, same, headers={"Idempotency-Key": "order-1"}).status_code == 200
    other = send(client, key, {**event, "properties": {"order_id": "2", "amount": 10}},
                 headers={"Idempotency-Key": "order-1"})
    assert other.status_code == 422
    assert "“order-1” was used for a different event" in other.get_json()["error"]
    drain(app)  # processed or not, the same key with another event is refused
    in_body = send(client, key, {**event, "type": "cart_abandoned", "properties": {},
                                 "idempotency_key": "order-1"})
    assert in_body.status_code == 422
    drain(app)
    assert count(app, Activity, Activity.type.in_(("purchase", "cart_abandoned"))) == 1
    both = send(client, key, {**event, "idempotency_key": "order-9"},
                headers={"Idempotency-Key": "order-8"})
    assert both.status_code == 400 and "in the header" in both.get_json()["error"]
    agreeing = send(client, key, {**event, "idempotency_key": "order-1"},
                    headers={"Idempotency-Key": "order-1"})
    assert agreeing.status_code == 200 and agreeing.get_json()["duplicate"] is True
    drain(app)
    assert count(app, Activity, Activity.type == "purchase") == 1


@pytest.mark.both_backends
def test_a_contact_made_by_the_api_or_the_cli_has_one_contact_created_event(app, client, key):
    assert send(client, key, {"email": "api@example.com", "type": "purchase"}).status_code == 202
    drain(app)
    result = app.test_cli_runner().invoke(args=["events", "record", "--email", "cli@example.com",
                                                "--type", "purchase"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        for email, source in (("api@example.com", "api"), ("cli@example.com", "cli")):
            rows = db.session.execute(
                select(Activity.type, Activity.properties).join(
                    Contact, Contact.id == Activity.contact_id)
                .where(Contact.email == email).order_by(Activity.id)).all()
            assert [tuple(row) for row in rows] == [
                ("contact_created", {"source": source}), ("purchase", {})]


def test_each_key_is_rate_limited(make_app):
    app = make_app(API_RATE_LIMIT=3, API_RATE_WINDOW=60)
    with app.app_context():
        key = keys.create("Shop", None)[1]
    client = app.test_client()
    codes = [send(client, key, {"email": "a@example.com", "type": "purchase"}).status_code
             for _ in range(5)]
    assert codes == [202, 202, 202, 429, 429]
    assert drain(app) == 3


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
    twice = runner.invoke(args=["events", "record", "--email", "cli@example.com", "--type",
                                "purchase", "--prop", "amount=1", "--prop", "amount=2"])
    assert twice.exit_code != 0 and "given twice" in twice.output
    listed = runner.invoke(args=["events", "types"])
    assert "* purchase" in listed.output and "  form_submitted" in listed.output


SHOP = '''
"""Declares an event type, and is on unless turned off."""
from engine.events import EventType, PropertyType
from engine.plugins import hookimpl
DEFAULT_ENABLED = True

@hookimpl
def register_event_types():
    return [EventType("refund", "Was refunded", {"amount": PropertyType.NUMBER}, external=True)]
'''


def test_cli_lists_and_accepts_the_types_the_admin_lists(make_app, make_plugins):
    """`magnet events` in a process of its own, which starts with only the built-in plugins on,
    knows the types of the plugins the site has enabled, as the admin does."""
    from tests.admin_helpers import signed_in
    folder = make_plugins(shop=SHOP)
    app = make_app(PLUGINS_PATH=str(folder))
    assert "Was refunded" in signed_in(app, "owner").get("/admin/event-types").get_data(
        as_text=True)
    env = {**os.environ, "MAGNET_INSTANCE_PATH": app.instance_path,
           "MAGNET_PLUGINS_PATH": str(folder), "REDIS_URL": app.config["REDIS_URL"]}

    def magnet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "engine.cli", "events", *args], env=env,
                              capture_output=True, text=True, timeout=60)
    listed = magnet("types")
    assert listed.returncode == 0, listed.stderr
    assert "* refund" in listed.stdout and "[shop]" in listed.stdout
    recorded = magnet("record", "--email", "r@example.com", "--type", "refund", "--prop",
                      "amount=3")
    assert recorded.returncode == 0, recorded.stderr


def test_one_idempotency_key_sent_twice_at_once_stores_one_event(app, key):
    """Two requests with one key at the same moment: the unique key lets one INSERT store, and
    the other answers as a repeat of it."""
    from concurrent.futures import ThreadPoolExecutor
    event = {"email": "a@example.com", "type": "purchase", "properties": {"order_id": "1"}}

    def post(_: int):
        answer = send(app.test_client(), key, event, headers={"Idempotency-Key": "order-1"})
        return answer.status_code, answer.get_json()["id"]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(post, range(8)))
    assert sorted(code for code, _ in answers) == [200] * 7 + [202]
    assert len({intake_id for _, intake_id in answers}) == 1
    drain(app)
    assert count(app, Activity, Activity.type == "purchase") == 1
    assert count(app, Contact) == 1
