"""The API's intake: events accepted with 202 are stored by the drain once each, in order,
whatever fails or runs at the same time; and the per-process rate limit shared in blocks."""
from __future__ import annotations

import json
import os
import signal
import threading

import pytest
from sqlalchemy import func, select

from engine.api import drain as drain_module
from engine.api import intake, keys
from engine.api.models import IntakeRow
from engine.contacts import store
from engine.contacts.models import Contact
from engine.db import db
from engine.events.models import Activity, QueuedEvent
from engine.testing import drain_intake as drain
from engine.testing import run_jobs, wait_until

PATH = "/api/v1/events"


@pytest.fixture
def key(app) -> str:
    with app.app_context():
        return keys.create("Shop", None)[1]


def send(client, key: str, event: dict, idempotency_key: str | None = None):
    headers = {"Authorization": f"Bearer {key}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return client.post(PATH, data=json.dumps(event), content_type="application/json",
                       headers=headers)


def purchase(email: str, order: int | str) -> dict:
    return {"email": email, "type": "purchase", "properties": {"order_id": str(order)}}


def orders(app, email: str | None = None) -> list[str]:
    """The order ids of the purchases stored (of one address), in the order recorded."""
    query = select(Activity.properties).where(Activity.type == "purchase").order_by(Activity.id)
    if email:
        query = query.join(Contact, Contact.id == Activity.contact_id).where(
            Contact.email == email)
    with app.app_context():
        return [props["order_id"] for props in db.session.scalars(query)]


def waiting(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(IntakeRow)
                                 .where(IntakeRow.processed_at.is_(None)))


def drain_job_queued(app) -> bool:
    """Whether a drain job waits (the web process's wake is sent from a background thread,
    `API_INTAKE_WAKE_LINGER` after the request)."""
    from rq import Queue

    from engine.jobs.connection import client_for
    return any(job.func_name.endswith("run_drain")
               for job in Queue("events", connection=client_for(app)).jobs)


def test_the_drain_job_stores_what_the_api_accepted_once(app, client, key):
    """The request wakes a drain job; a real worker runs it; the event and contact are there,
    and the repeat of its idempotency key now names them."""
    first = send(client, key, purchase("new@example.com", 1), "order-1")
    assert first.status_code == 202 and waiting(app) == 1
    assert wait_until(lambda: drain_job_queued(app), 10)
    run_jobs(app, ["events"])
    assert waiting(app) == 0 and orders(app) == ["1"]
    with app.app_context():
        contact = db.session.scalar(select(Contact).where(Contact.email == "new@example.com"))
        assert contact.consent == "unknown"
    again = send(client, key, purchase("new@example.com", 1), "order-1").get_json()
    assert again["duplicate"] is True and again["contact_id"] == contact.id
    assert again["id"] == first.get_json()["id"] and again["status"] == "stored"
    assert not drain_job_queued(app)  # a repeat stores nothing, and wakes nothing
    assert orders(app) == ["1"]


def test_a_burst_of_requests_wakes_one_drain_job(make_app):
    app = make_app(API_INTAKE_WAKE_LINGER=0.5)
    with app.app_context():
        key = keys.create("Shop", None)[1]
    client = app.test_client()
    for order in range(20):
        assert send(client, key, purchase("a@example.com", order)).status_code == 202
    assert wait_until(lambda: drain_job_queued(app), 10)
    from rq import Queue

    from engine.jobs.connection import client_for
    assert len(Queue("events", connection=client_for(app)).jobs) == 1
    run_jobs(app, ["events"])
    assert orders(app) == [str(order) for order in range(20)]


def test_the_sweep_wakes_the_drain_when_a_wake_was_lost(app, client, key):
    from rq import Queue

    from engine.jobs.connection import client_for
    assert send(client, key, purchase("a@example.com", 1)).status_code == 202
    assert wait_until(lambda: drain_job_queued(app), 10)
    redis = client_for(app)
    Queue("events", connection=redis).empty()  # the wake's job is lost
    redis.delete(drain_module.WAKE_KEY)
    with app.app_context():
        assert drain_module.sweep() == 1
    run_jobs(app, ["events"])
    assert orders(app) == ["1"]
    with app.app_context():
        assert drain_module.sweep() == 0


def test_a_drain_that_fails_everywhere_stores_nothing_and_a_retry_stores_each_once(
        app, client, key, monkeypatch):
    """The database refusing every row (as when it is away): the batch is rolled back, every
    row stays waiting, the job fails to be retried; the retry stores each event once."""
    for order in range(5):
        assert send(client, key, purchase(f"p{order}@example.com", order),
                    f"order-{order}").status_code == 202
    real = store.save_addresses

    def fails(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(store, "save_addresses", fails)
    with pytest.raises(RuntimeError), app.app_context():
        drain_module.drain_next()
    assert orders(app) == [] and waiting(app) == 5
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Contact)) == 0
        assert db.session.scalar(select(func.count()).select_from(QueuedEvent)) == 0
    monkeypatch.setattr(store, "save_addresses", real)
    assert drain(app) == 5
    assert sorted(orders(app)) == ["0", "1", "2", "3", "4"]
    assert drain(app) == 0 and len(orders(app)) == 5


def test_a_row_that_always_fails_is_refused_and_the_rest_are_stored_once(
        app, client, key, monkeypatch):
    """One row the database keeps refusing fails its batch; the rows are then stored one by
    one, so the rest go in (once each) and that one is kept as refused, with the error."""
    for order in range(5):
        assert send(client, key, purchase(f"p{order}@example.com", order),
                    f"order-{order}").status_code == 202
    real = store.save_addresses

    def fails_for_p2(addresses, *args, **kwargs):
        if "p2@example.com" in addresses:
            raise RuntimeError("value too long for the column")
        return real(addresses, *args, **kwargs)

    monkeypatch.setattr(store, "save_addresses", fails_for_p2)
    assert drain(app) == 5
    assert sorted(orders(app)) == ["0", "1", "3", "4"] and waiting(app) == 0
    with app.app_context():
        row = db.session.scalar(select(IntakeRow).where(IntakeRow.refused.is_not(None)))
        assert row.email == "p2@example.com"
        assert "RuntimeError: value too long for the column" in row.refused
    monkeypatch.setattr(store, "save_addresses", real)
    assert drain(app) == 0 and sorted(orders(app)) == ["0", "1", "3", "4"]
    again = send(client, key, purchase("p2@example.com", 2), "order-2").get_json()
    assert again["status"] == "refused" and "value too long" in again["error"]


def test_erasure_removes_the_persons_intake_rows_waiting_ones_included(app, client, key):
    """An erased person's event still waiting in the intake must not bring them back as a
    contact, nor may a retry of a request made before the erasure; no row keeps their data."""
    from engine.contacts import gdpr
    from engine.testing import traces_of
    assert send(client, key, purchase("gone@example.com", 1), "order-1").status_code == 202
    assert drain(app) == 1
    assert send(client, key, purchase("gone@example.com", 2), "order-2").status_code == 202
    assert send(client, key, purchase("gone@example.com", 3)).status_code == 202  # no key
    with app.app_context():
        contact_id = db.session.scalar(select(Contact.id).where(
            Contact.email == "gone@example.com"))
        exported = gdpr.export_contact(contact_id)
        assert [row["status"] for row in exported["api_intake"]] == [
            "stored", "waiting", "waiting"]
        gdpr.erase_contact(contact_id, actor="test")
        assert db.session.scalar(select(func.count()).select_from(IntakeRow)) == 2  # the keyed
    assert traces_of(app, ["gone@example"]) == {}
    assert drain(app) == 0
    for order in (1, 2):  # the sender retries: told it is refused, nobody is brought back
        again = send(client, key, purchase("gone@example.com", order), f"order-{order}")
        assert again.status_code == 200 and again.get_json()["status"] == "refused"
        assert "erased" in again.get_json()["error"]
    assert drain(app) == 0
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Contact).where(
            Contact.email == "gone@example.com")) == 0
        assert db.session.scalar(select(func.count()).select_from(Activity).where(
            Activity.type == "purchase")) == 1  # the first one's, its properties erased


def test_an_intake_id_is_never_handed_out_twice(app, client, key):
    """The 202's id is the sender's reference: a row deleted once stored leaves its id unused."""
    first = send(client, key, purchase("a@example.com", 1)).get_json()["id"]
    assert drain(app) == 1  # stored, and its row (no idempotency key) deleted
    second = send(client, key, purchase("b@example.com", 2)).get_json()["id"]
    assert second > first


def test_a_passing_database_error_leaves_the_rows_waiting_never_refused(
        app, client, key, monkeypatch):
    """"database is locked" or a lost connection says nothing about the events: none is
    refused for it; they wait for the next run, which stores each once."""
    from sqlalchemy.exc import OperationalError
    for order in range(4):
        assert send(client, key, purchase(f"p{order}@example.com", order),
                    f"order-{order}").status_code == 202
    real, calls = store.save_addresses, []

    def locked_once_for_p2(addresses, *args, **kwargs):
        calls.append(list(addresses))
        if "p2@example.com" in addresses and len(calls) == 1:
            raise OperationalError("UPDATE", {}, Exception("database is locked"))
        return real(addresses, *args, **kwargs)

    monkeypatch.setattr(store, "save_addresses", locked_once_for_p2)
    with pytest.raises(OperationalError), app.app_context():
        drain_module.drain_next()
    assert waiting(app) == 4 and orders(app) == []  # the batch as a whole: left waiting
    with app.app_context():
        assert not db.session.scalar(select(IntakeRow).where(IntakeRow.refused.is_not(None)))
    assert drain(app) == 4
    assert sorted(orders(app)) == ["0", "1", "2", "3"]


@pytest.mark.both_backends
def test_two_drains_at_once_store_each_event_once_in_order(app, key, backend):
    """Two drains in threads (on PostgreSQL they share the work with SKIP LOCKED; on SQLite
    they take turns), small batches, events of a few people interleaved: every event once, and
    each person's in the order they were accepted."""
    client = app.test_client()
    people = [f"p{n}@example.com" for n in range(4)]
    for order in range(60):
        assert send(client, key, purchase(people[order % 4], order)).status_code == 202
    errors: list[BaseException] = []

    def drain_in_small_batches() -> None:
        try:
            with app.app_context():
                while drain_module.drain_next(batch=7):
                    pass
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=drain_in_small_batches) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    drain(app)  # rows one drain left for the other's turn, if the other had finished
    assert sorted(orders(app), key=int) == [str(n) for n in range(60)]
    for n, email in enumerate(people):
        assert orders(app, email) == [str(order) for order in range(n, 60, 4)]
    with app.app_context():  # and they reach `on_event` in that order too
        queued = db.session.execute(
            select(Activity.contact_id, Activity.properties).join(
                QueuedEvent, QueuedEvent.event_id == Activity.id)
            .where(Activity.type == "purchase").order_by(QueuedEvent.seq)).all()
    by_contact: dict[int, list[int]] = {}
    for contact_id, props in queued:
        by_contact.setdefault(contact_id, []).append(int(props["order_id"]))
    assert all(seen == sorted(seen) for seen in by_contact.values())


def test_a_row_that_can_no_longer_be_stored_is_refused_and_does_not_block_the_rest(
        app, client, key):
    from engine.events.types import declare_custom, delete_custom
    from tests.admin_helpers import signed_in
    with app.app_context():
        declare_custom("trial_started", "Started a trial", {})
        intake.forget_types()
    assert send(client, key, purchase("a@example.com", 1)).status_code == 202
    refused = send(client, key, {"email": "b@example.com", "type": "trial_started"}, "trial-b")
    assert refused.status_code == 202
    assert send(client, key, purchase("c@example.com", 2)).status_code == 202
    with app.app_context():
        delete_custom("trial_started")  # undeclared before the drain got to it
    assert drain(app) == 3
    assert orders(app) == ["1", "2"] and waiting(app) == 0
    with app.app_context():
        row = db.session.scalar(select(IntakeRow).where(IntakeRow.refused.is_not(None)))
        assert "Unknown event type “trial_started”" in row.refused
        assert not db.session.scalar(select(Contact).where(Contact.email == "b@example.com"))
    again = send(client, key, {"email": "b@example.com", "type": "purchase"}, "trial-b")
    assert again.status_code == 422  # another event with that key: still the sender's mistake
    page = signed_in(app, "owner").get("/admin/api-keys").get_data(as_text=True)
    assert "0 events waiting, 1 refused" in page
    assert "Unknown event type “trial_started”" in page and "b@example.com" in page


def test_processed_rows_are_forgotten_after_the_idempotency_time(app, client, key, clock):
    event = purchase("a@example.com", 1)
    assert send(client, key, event, "order-1").status_code == 202
    drain(app)
    clock.advance(seconds=app.config["API_IDEMPOTENCY_SECONDS"] + 60)
    with app.app_context():
        assert intake.forget_idempotency_keys() == 1
    assert send(client, key, event, "order-1").status_code == 202  # a new event now
    drain(app)
    assert orders(app) == ["1", "1"]


def test_a_key_served_before_the_intake_is_still_answered_as_a_repeat(make_app):
    """Idempotency keys stored by the synchronous API (table `api_idempotency`) move into the
    intake with the migration: a retry with one is still a repeat, naming the event."""
    from alembic import command
    from sqlalchemy import text

    from engine import migrate
    from engine.db import locking
    app = make_app(fresh_db=True)
    migrate.upgrade(app)
    config = migrate.alembic_config(app, "api")
    with app.app_context(), locking(), db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "29d1b2599ee3")
    with app.app_context():
        _, key = keys.create("Shop", None)
    digest = None
    with app.app_context():
        address, name, clean, moment = intake.check("a@example.com", "purchase",
                                                    {"order_id": "1"}, None)
        digest = intake.fingerprint(address, name, clean, moment)
    with app.app_context(), locking(), db.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO api_idempotency (api_key_id, key, event_id, contact_id, request_hash,"
            " created_at) VALUES (1, 'order-1', 812, 34, :digest, :now)"),
            {"digest": digest, "now": "2026-12-01 00:00:00+00:00"})
    migrate.upgrade(app)
    client = app.test_client()
    again = send(client, key, purchase("a@example.com", 1), "order-1")
    assert again.status_code == 200
    assert again.get_json()["event_id"] == 812 and again.get_json()["contact_id"] == 34
    assert send(client, key, purchase("a@example.com", 2), "order-1").status_code == 422
    assert drain(app) == 0


def test_the_rate_limit_counts_across_processes_within_the_documented_slack(app):
    """Two processes' counters (two `BlockLimits`) on one Redis: each refuses once the shared
    count of blocks is spent, and together they admit at most the limit plus `block - 1` per
    process."""
    from engine.web.ratelimit import BlockLimits
    limit, block = 30, 10
    with app.app_context():
        one, two = BlockLimits(60, block), BlockLimits(60, block)
        admitted_one = sum(one.admit([("api:test-shared", limit)]) for _ in range(25))
        admitted_two = sum(two.admit([("api:test-shared", limit)]) for _ in range(40))
        assert admitted_one == 25
        assert admitted_two < limit  # it sees the other's reported blocks
        assert admitted_one + admitted_two <= limit + 2 * (block - 1)
        assert not two.admit([("api:test-shared", limit)])
        alone = BlockLimits(60, block)
        assert sum(alone.admit([("api:test-alone", 3)]) for _ in range(5)) == 3  # exact


def test_a_high_limit_is_reported_in_blocks_of_a_hundredth_of_it(app):
    """A key allowed 5,000 hits reports every 50th (1%), not every 10th; two processes then
    admit at most the limit plus 49 each, and the limit still holds across them."""
    from engine.jobs import connection
    from engine.web.ratelimit import BlockLimits
    limit = 5000
    with app.app_context():
        one, two = BlockLimits(60, 10), BlockLimits(60, 10)
        assert all(one.admit([("api:test-high", limit)]) for _ in range(149))
        buckets = connection().keys("magnet:rl:api:test-high:*")
        assert [int(connection().get(b)) for b in buckets] == [2]  # 2 blocks of 50, not 14
        admitted = 149 + sum(two.admit([("api:test-high", limit)]) for _ in range(limit))
        admitted += sum(one.admit([("api:test-high", limit)]) for _ in range(100))
        assert limit - 50 <= admitted <= limit + 2 * 49
        assert not one.admit([("api:test-high", limit)])


def test_a_retry_after_its_type_was_deleted_is_answered_as_the_first_request(app, client, key):
    """The first answer, whatever changed since; a request that is not the same retry still
    gets the type's refusal."""
    from engine.events.types import declare_custom, delete_custom
    with app.app_context():
        declare_custom("trial_started", "Started a trial", {})
        intake.forget_types()
    event = {"email": "b@example.com", "type": "trial_started", "properties": {}}
    first = send(client, key, event, "trial-b")
    assert first.status_code == 202 and drain(app) == 1
    with app.app_context():
        delete_custom("trial_started")
        intake.forget_types()
    again = send(client, key, event, "trial-b")
    assert again.status_code == 200, again.get_data(as_text=True)
    assert again.json["id"] == first.json["id"] and again.json["duplicate"] is True
    assert again.json["status"] == "stored" and again.json["event_id"]
    for different, idempotency_key in (({**event, "email": "c@example.com"}, "trial-b"),
                                       (event, "trial-c")):
        refused = send(client, key, different, idempotency_key)
        assert refused.status_code == 400
        assert "Unknown event type “trial_started”" in refused.json["error"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(IntakeRow)) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_the_intake_writer_keeps_one_connection_per_process(app, client, key):
    """The group commit keeps a driver connection of its own (no pool check-out per commit);
    a process forked after it wrote (gunicorn's workers, with a preloaded app) makes its own
    rather than share the parent's SQLite connection, and both go on writing."""
    assert send(client, key, purchase("parent@example.com", 1)).status_code == 202
    with app.app_context():
        writer = intake._group_commit()
        with writer._transaction() as raw:
            parent_connection = id(raw)
        with writer._transaction() as raw:
            assert id(raw) == parent_connection  # kept, not checked out anew
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit code
        signal.alarm(20)
        try:
            with app.app_context(), writer._transaction() as raw:
                raw.execute("SELECT 1")
                os._exit(0 if id(raw) != parent_connection else 3)
        except BaseException:
            os._exit(4)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert send(client, key, purchase("parent@example.com", 2)).status_code == 202
    assert waiting(app) == 2
