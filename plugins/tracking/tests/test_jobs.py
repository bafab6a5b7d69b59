"""The periodic jobs: draining through real RQ workers, the on_event hook, retention pruning."""
from __future__ import annotations

import sys
import textwrap
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine.contacts.models import Contact, Visitor
from engine.db import db, utcnow, write
from engine.events.models import Activity
from engine.jobs import enqueue
from plugins.tracking import clean, retention
from plugins.tracking.models import Seen, StoredEvent, Visit
from plugins.tracking.tests.helpers import drain, events, send

LISTENER = '''
"""Keeps every batch of events it hears."""
from engine.plugins import hookimpl

DEFAULT_ENABLED = True
BATCHES = []


@hookimpl
def on_event(events):
    BATCHES.append([(e["type"], e["url"], e["contact_id"]) for e in events])
'''


def install_listener(folder, monkeypatch):
    """A plugin installed as a distribution (entry point `magnet.plugins`), so that it runs beside
    the bundled tracking plugin of the default plugins folder."""
    module = f"listener_{uuid.uuid4().hex[:8]}"
    (folder / f"{module}.py").write_text(textwrap.dedent(LISTENER))
    info = folder / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[magnet.plugins]\nlistener = {module}\n")
    monkeypatch.syspath_prepend(str(folder))
    return module


def test_hook_on_event(make_app, tmp_path, monkeypatch, work):
    module = install_listener(tmp_path, monkeypatch)
    app = make_app()
    assert app.extensions["magnet.plugins"].is_enabled("listener")
    client = app.test_client()
    send(client, app, url="http://localhost/one")
    send(client, app, "click", url="http://localhost/one", h="https://example.org/", x="Out")
    with app.app_context():
        enqueue("tracking.drain")
    work(app, ["events"])
    assert sys.modules[module].BATCHES == [[("page_view", "http://localhost/one", None),
                                            ("click", "http://localhost/one", None)]]


@pytest.mark.slow
def test_a_running_worker_stores_events_on_its_own(app, client, redis_url):
    """The periodic drain needs no one to start it (how fast: see bench/beacon.py)."""
    from engine.testing import start_worker, stop_worker
    worker = start_worker(app, REDIS_URL=redis_url)
    try:
        for n in range(50):
            assert send(client, app, url=f"http://localhost/p{n}").status_code == 204
        deadline = time.monotonic() + 30
        while len(events(app)) < 50 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(e.url for e in events(app)) == sorted(f"http://localhost/p{n}"
                                                            for n in range(50))
    finally:
        stop_worker(worker)


@pytest.mark.both_backends
def test_retention_prunes_old_anonymous_visitors_only(app, client):
    send(client, app, url="http://localhost/old")
    drain(app)
    known_client = app.test_client()
    send(known_client, app, url="http://localhost/known")
    drain(app)
    anonymous, known = [e.visitor_id for e in events(app)]
    long_ago = utcnow() - timedelta(days=200)
    with app.app_context():
        with write() as session:
            contact = Contact(email="kept@example.com", custom={}, consent_proof={},
                              first_touch={}, last_touch={})
            session.add(contact)
            session.flush()
            from engine.contacts import identity
            identity.identify(known, contact.id)
            session.execute(Activity.__table__.update().values(occurred_at=long_ago))
            session.execute(Visit.__table__.update().values(started_at=long_ago,
                                                            last_seen_at=long_ago))
            session.execute(Visitor.__table__.update().values(first_seen=long_ago,
                                                              last_seen=long_ago))
            session.add(Seen(period=long_ago.date().isoformat(), kind="v", subject=anonymous))
            session.add(StoredEvent(id=clean.event_id(long_ago.timestamp())))  # an old event's
    send(app.test_client(), app, url="http://localhost/recent")  # another, recent visitor
    drain(app)
    with app.app_context():
        assert retention.prune() == {"events": 1, "visits": 1, "visitors": 1,
                                     "event_ids": 1, "active_lists": 1}
        assert db.session.scalar(select(func.count()).select_from(StoredEvent)) == 3
        assert sorted(a.url for a in db.session.scalars(select(Activity).where(
            Activity.type.in_(clean.EVENT_TYPES)))) == [
            "http://localhost/known", "http://localhost/recent"]
        assert db.session.scalar(select(func.count()).select_from(Visit)) == 2
        assert db.session.get(Visitor, anonymous) is None
        assert db.session.get(Visitor, known).contact_id == contact.id
        assert retention.prune(days=365) == {"events": 0, "visits": 0, "visitors": 0,
                                             "event_ids": 0, "active_lists": 0}


def test_prune_command_deletes_old_anonymous_events(app, client):
    send(client, app, url="http://localhost/old")
    drain(app)
    with app.app_context(), write() as session:
        forty_days_ago = utcnow() - timedelta(days=40)
        session.execute(Activity.__table__.update().values(occurred_at=forty_days_ago))
    result = app.test_cli_runner().invoke(args=["tracking", "prune", "--days", "30"])
    assert result.exit_code == 0, result.output
    assert "1 events" in result.output
    assert events(app) == []
