"""The event stream: stored with the caller's transaction, delivered once, per contact in order."""
from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import func, select, text

from engine import events
from engine.db import db, write
from engine.events.models import Activity, QueuedEvent
from engine.events.types import EventTypeError, check_external
from engine.testing import start_worker, stop_worker, wait_until

# A plugin that keeps, in a table of its own, each event it was given: what a real plugin's
# handler writes commits with the delivery, or not at all.
RECORDER = '''
"""Keeps every event it hears about."""
import os, time
from sqlalchemy import text
from engine.db import db
from engine.plugins import hookimpl
DEFAULT_ENABLED = True

@hookimpl
def on_plugin_enabled(slug):
    pass

@hookimpl
def on_event(events):
    for e in events:
        if e["type"] != "purchase":  # the contacts the tests make are events too
            continue
        db.session.execute(text("INSERT INTO heard (event_id, contact_id, pid) "
                                "VALUES (:e, :c, :p)"),
                           {"e": e["id"], "c": e["contact_id"], "p": os.getpid()})
    pause = os.environ.get("RECORDER_PAUSE")
    if pause and os.path.exists(pause):
        time.sleep(30)  # long enough to be killed in the middle of a delivery
'''
BROKEN = '''
"""Fails on every event, after writing."""
from sqlalchemy import text
from engine.db import db
from engine.plugins import hookimpl
DEFAULT_ENABLED = True

@hookimpl
def on_event(events):
    db.session.execute(text("INSERT INTO heard (event_id, contact_id, pid) VALUES (-1, -1, -1)"))
    raise RuntimeError("broken plugin")
'''


@pytest.fixture
def stream_app(make_app, make_plugins):
    folder = make_plugins(recorder=RECORDER)
    app = make_app(PLUGINS_PATH=str(folder))
    with app.app_context(), write() as session:
        session.execute(text("CREATE TABLE heard (event_id BIGINT, contact_id INTEGER, "
                             "pid INTEGER)"))
    return app


def heard(app) -> list[tuple[int, int]]:
    with app.app_context():
        rows = db.session.execute(text("SELECT event_id, contact_id FROM heard")).all()
        db.session.rollback()
    return [tuple(row) for row in rows]


def _contacts(app, count: int) -> list[int]:
    from engine.contacts import store
    with app.app_context(), write():
        return [store.save(f"p{n}@example.com", {}).id for n in range(count)]


@pytest.mark.both_backends
def test_hook_on_event(stream_app, work):
    """Every event, whoever records it, reaches `on_event` once, after the commit."""
    app = stream_app
    (contact,) = _contacts(app, 1)
    with app.app_context():
        with write():
            first = events.record("purchase", contact_id=contact, properties={"amount": 12})
            second = events.record("purchase", contact_id=contact, properties={"amount": 5})
        # and the contact_created event of `_contacts`
        assert db.session.scalar(select(func.count()).select_from(QueuedEvent)) == 3
        stored = db.session.get(Activity, first)
        assert (stored.type, stored.properties) == ("purchase", {"amount": 12})
    work(app)
    assert heard(app) == [(first, contact), (second, contact)]
    work(app)  # delivered once, and the queue is empty
    assert len(heard(app)) == 2
    with app.app_context():
        assert events.delivery.pending() == 0


EVERYTHING = '''
"""Keeps the id and type of every event it is given."""
from sqlalchemy import text
from engine.db import db
from engine.plugins import hookimpl
DEFAULT_ENABLED = True

@hookimpl
def on_event(events):
    for e in events:
        db.session.execute(text("INSERT INTO given (event_id, type) VALUES (:e, :t)"),
                           {"e": e["id"], "t": e["type"]})
'''


@pytest.mark.both_backends
def test_an_event_erased_while_queued_is_not_delivered_and_leaves_the_queue(make_app,
                                                                             make_plugins, work):
    """An event deleted from the timeline before its delivery (its person erased) reaches no
    plugin, and its queue row goes with the batch's others: nothing waits for it."""
    app = make_app(PLUGINS_PATH=str(make_plugins(everything=EVERYTHING)))
    with app.app_context():
        with write() as session:
            session.execute(text("CREATE TABLE given (event_id BIGINT, type VARCHAR(50))"))
            kept = events.record("purchase", visitor_id="v-kept", properties={"amount": 1})
            erased = events.record("purchase", visitor_id="v-erased")
            later = events.record("purchase", visitor_id="v-kept", properties={"amount": 2})
        with write() as session:
            session.execute(Activity.__table__.delete().where(Activity.id == erased))
    work(app)
    with app.app_context():
        given = db.session.execute(text("SELECT event_id, type FROM given")).all()
        assert sorted(tuple(row) for row in given) == [(kept, "purchase"), (later, "purchase")]
        assert events.delivery.pending() == 0


def test_a_rolled_back_event_is_neither_stored_nor_delivered(stream_app, work):
    app = stream_app
    with app.app_context():
        with pytest.raises(RuntimeError), write():
            events.record("purchase", visitor_id="v1")
            raise RuntimeError("the caller's work failed")
        assert db.session.scalar(select(func.count()).select_from(Activity)) == 0
    work(app)
    assert heard(app) == []


def test_a_failing_plugin_loses_its_own_writes_only(make_app, make_plugins, work):
    folder = make_plugins(recorder=RECORDER, broken=BROKEN)
    app = make_app(PLUGINS_PATH=str(folder))
    with app.app_context(), write() as session:
        session.execute(text("CREATE TABLE heard (event_id BIGINT, contact_id INTEGER, "
                             "pid INTEGER)"))
        event_id = events.record("purchase", visitor_id="v1")
    work(app)
    assert heard(app) == [(event_id, None)]  # not the broken plugin's -1 row
    with app.app_context():
        errors = app.extensions["magnet.plugins"].recent_errors("broken")
        assert errors and "broken plugin" in errors[0].message
        assert events.delivery.pending() == 0


@pytest.mark.slow
@pytest.mark.both_backends
def test_two_workers_deliver_each_contacts_events_once_and_in_order(stream_app):
    app = stream_app
    contacts = _contacts(app, 40)
    workers = [start_worker(app) for _ in range(2)]
    recorded: list[int] = []
    try:
        for round_ in range(15):  # events keep arriving while both workers deliver
            with app.app_context(), write():
                recorded += events.record_many([
                    {"type": "purchase", "contact_id": c, "properties": {"amount": round_}}
                    for c in contacts])
            time.sleep(0.05)
        assert wait_until(lambda: len(heard(app)) >= len(recorded))
        time.sleep(0.5)
    finally:
        errors = [stop_worker(worker) for worker in workers]
    got = heard(app)
    assert sorted(e for e, _ in got) == sorted(recorded), errors  # each exactly once
    for contact in contacts:
        theirs = [e for e, c in got if c == contact]
        assert theirs == sorted(theirs)  # in the order they happened
    with app.app_context():
        pids = {p for (p,) in db.session.execute(text("SELECT DISTINCT pid FROM heard"))}
    assert len(pids) >= 1


@pytest.mark.slow
def test_a_worker_killed_mid_delivery_leaves_no_half_delivered_batch(stream_app, tmp_path):
    """kill -9 while a plugin handles a batch: its writes vanish with the worker, the batch
    stays queued, and the next worker delivers it once."""
    app = stream_app
    pause = tmp_path / "pause"
    pause.write_text("1")
    contacts = _contacts(app, 5)
    with app.app_context(), write():
        recorded = events.record_many([{"type": "purchase", "contact_id": c} for c in contacts])
    victim = start_worker(app, RECORDER_PAUSE=str(pause))
    try:
        # the handler has written its rows and now sleeps, inside the delivery's transaction
        assert wait_until(lambda: _delivering(app), 30)
    finally:
        stop_worker(victim, kill=True)
    assert heard(app) == []  # what the killed delivery wrote never committed
    pause.unlink()
    survivor = start_worker(app)
    with app.app_context():  # the periodic sweep finds the batch the dead worker left
        assert events.delivery.sweep() == 2 * len(recorded)  # with each contact_created
    try:
        assert wait_until(lambda: len(heard(app)) == len(recorded))
        time.sleep(0.5)
    finally:
        stop_worker(survivor)
    assert sorted(e for e, _ in heard(app)) == sorted(recorded)


def _delivering(app) -> bool:
    """Whether a delivery holds SQLite's write lock (its transaction is under way)."""
    import sqlite3
    connection = sqlite3.connect(os.path.join(app.instance_path, "magnet.db"), timeout=0)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        connection.close()


def test_hook_register_event_types(make_app, make_plugins):
    folder = make_plugins(shop='''
        """Declares the shop's events."""
        from engine.events import EventType, PropertyType
        from engine.plugins import hookimpl
        DEFAULT_ENABLED = True

        @hookimpl
        def register_event_types():
            return [EventType("refund", "Was refunded", {"amount": PropertyType.NUMBER},
                              external=True)]
    ''')
    app = make_app(PLUGINS_PATH=str(folder))
    with app.app_context():
        declared, clean = check_external("refund", {"amount": 9.5})
        assert (declared.source, clean) == ("shop", {"amount": 9.5})


@pytest.mark.parametrize("name,properties,message", [
    ("no_such_event", {}, "Unknown event type"),
    ("form_submitted", {}, "recorded by the site itself"),
    ("purchase", {"colour": "red"}, "no property “colour”"),
    ("purchase", {"amount": "12"}, "must be a number"),
    ("purchase", {"amount": float("inf")}, "must be a number"),
    ("purchase", ["amount"], "must be an object"),
    ("Bad Name", {}, "lower-case"),
])
def test_events_from_outside_are_checked_against_their_type(app, name, properties, message):
    with app.app_context(), pytest.raises(EventTypeError, match=message):
        check_external(name, properties)


@pytest.mark.both_backends
def test_an_event_recorded_after_deferred_ones_comes_after_them(app):
    """The timeline keeps the order things happened in, and a savepoint that rolls back takes
    only its own events with it."""
    from engine.contacts import store
    with app.app_context():
        with write() as session:
            contact = store.save("new@example.com", {}, origin="api").id  # deferred
            purchase = events.record("purchase", contact_id=contact)
            events.defer([{"type": "tag_added", "contact_id": contact}])
            try:
                with session.begin_nested():
                    events.defer([{"type": "list_joined", "contact_id": contact}])
                    events.record("deal_won", contact_id=contact)
                    raise RuntimeError("the savepoint's work failed")
            except RuntimeError:
                pass
            refund = events.record("cart_abandoned", contact_id=contact)
        rows = db.session.execute(select(Activity.id, Activity.type, Activity.properties)
                                  .order_by(Activity.id)).all()
        assert [(row.type, row.properties) for row in rows] == [
            ("contact_created", {"source": "api"}), ("purchase", {}), ("tag_added", {}),
            ("cart_abandoned", {})]
        assert [row.id for row in rows][1::2] == [purchase, refund]
        assert db.session.scalar(select(func.count()).select_from(QueuedEvent)) == 4


def test_events_deferred_in_a_savepoint_that_rolls_back_are_never_written(app):
    """A savepoint that only defers (nothing recorded after it) takes its events with it when
    it rolls back; those deferred before it, and in savepoints that commit, stay."""
    from engine.contacts import store
    with app.app_context():
        with write() as session:
            contact = store.save("kept@example.com", {}, origin="api").id
            with session.begin_nested():
                events.defer([{"type": "tag_added", "contact_id": contact}])
            try:
                with session.begin_nested():
                    events.defer([{"type": "list_joined", "contact_id": contact}])
                    raise RuntimeError("the savepoint's work failed")
            except RuntimeError:
                pass
        types = db.session.scalars(select(Activity.type).order_by(Activity.id)).all()
        assert types == ["contact_created", "tag_added"]


BATCHES = '''
"""Keeps, for each call of on_event, the events it was given."""
from sqlalchemy import text
from engine.db import db
from engine.plugins import hookimpl
DEFAULT_ENABLED = True

@hookimpl
def on_event(events):
    batch = db.session.execute(text("SELECT coalesce(max(batch), 0) + 1 FROM heard")).scalar()
    for e in events:
        db.session.execute(text("INSERT INTO heard (event_id, contact_id, batch) "
                                "VALUES (:e, :c, :b)"),
                           {"e": e["id"], "c": e["contact_id"] or 0, "b": batch})
'''


def test_sqlite_delivers_the_events_of_many_partitions_in_one_batch(make_app, make_plugins):
    """On SQLite (one writer at a time) a batch is everything queued, whatever the partition:
    a stream of events from many people costs a transaction per batch, not per person; each
    person's events still come in the order they were recorded."""
    from engine.events.models import PARTITIONS, EventPartition
    from engine.testing import deliver_events
    app = make_app(PLUGINS_PATH=str(make_plugins(batches=BATCHES)))
    with app.app_context(), write() as session:
        session.execute(text("CREATE TABLE heard (event_id BIGINT, contact_id INTEGER, "
                             "batch INTEGER)"))
    contacts = _contacts(app, PARTITIONS + 6)  # more people than partitions
    recorded: list[int] = []
    with app.app_context():
        for round_ in range(3):
            with write():
                recorded += events.record_many([
                    {"type": "purchase", "contact_id": c, "properties": {"amount": round_}}
                    for c in contacts])
    assert deliver_events(app) == 4 * len(contacts)  # and each one's contact_created
    with app.app_context():
        got = db.session.execute(text("SELECT event_id, contact_id, batch FROM heard")).all()
        counted = db.session.scalar(select(func.sum(EventPartition.delivered)))
        assert events.delivery.pending() == 0
    assert {batch for _, _, batch in got} == {1}
    assert sorted(e for e, _, _ in got if e in set(recorded)) == sorted(recorded)
    for contact in contacts:
        theirs = [e for e, c, _ in got if c == contact]
        assert len(theirs) == 4 and theirs == sorted(theirs)
    assert counted == 4 * len(contacts)


def test_commits_during_a_wake_share_one_more_wake_after_it(app, monkeypatch):
    """A process sends one delivery wake-up at a time: commits made while one is on its way
    are covered by a single further wake-up that begins after all of them, none by none."""
    import threading

    from engine.events import delivery
    from engine.testing import wait_until
    started, release, calls = threading.Event(), threading.Event(), []
    second_begun, second_release = threading.Event(), threading.Event()

    def wake(force: bool = False) -> bool:
        calls.append(len(done))  # how many commits had asked before this wake began
        if len(calls) == 1:
            started.set()
            release.wait(5)
        elif len(calls) == 2:
            second_begun.set()
            second_release.wait(5)
        return True

    monkeypatch.setattr(delivery, "wake", wake)
    done: list[int] = []

    def commit() -> None:
        with app.app_context():
            delivery.wake_after_commit()
        done.append(1)

    first = threading.Thread(target=commit)
    first.start()
    assert started.wait(5)
    others = [threading.Thread(target=commit) for _ in range(5)]
    for thread in others:
        thread.start()
    for thread in others:
        thread.join(5)
    assert len(done) == 5 and calls == [0]  # they asked, and did not wait for Redis
    release.set()
    assert second_begun.wait(5)
    first.join(5)
    assert not first.is_alive()  # the first commit does not wait for the others' wake
    assert calls == [0, 5]  # one more wake, begun after the five commits, in the background
    second_release.set()
    assert wait_until(lambda: not app.extensions["magnet.events.waker"].running, 5)
    with app.app_context():
        delivery.wake_after_commit()
    assert calls == [0, 5, 6]  # and the next commit wakes again by itself
