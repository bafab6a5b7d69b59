"""SQLite under several writing processes, UTC datetimes, and the configuration layers."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from engine import config
from engine.db import db
from engine.plugins.models import PluginState

# Each process reads a counter, then writes it back incremented: the read-then-write pattern
# that fails at once with "database is locked" unless the write lock is taken up front.
WRITER = """
import sys
from engine import create_app
from engine.db import write
from engine.plugins.models import PluginState

app = create_app(instance_path=sys.argv[1])
with app.app_context():
    for _ in range(int(sys.argv[2])):
        with write() as session:
            row = session.get(PluginState, "counter")
            row.settings = {"n": row.settings["n"] + 1}
"""


@pytest.mark.slow
def test_several_processes_write_at_once_without_locking_errors(app):
    from engine.db import write
    with app.app_context(), write() as session:
        session.add(PluginState(slug="counter", enabled=False, settings={"n": 0}))
    processes = [subprocess.Popen([sys.executable, "-c", WRITER, app.instance_path, "150"],
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], errors
    with app.app_context():
        assert db.session.get(PluginState, "counter").settings == {"n": 600}


def test_writers_take_their_turn_only_while_their_transaction_runs(app):
    import fcntl
    import os
    from pathlib import Path

    from engine.db import write
    queue = Path(app.instance_path) / "magnet.db.writers"

    def taken() -> bool:  # as another writer would find it
        fd = os.open(queue, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    with app.app_context():
        with write() as session:
            assert not taken()  # no SQL sent yet: work before it holds nobody up
            session.add(PluginState(slug="turn", enabled=False, settings={}))
            session.flush()
            assert taken()
            with write():  # a write inside another shares its turn
                session.get(PluginState, "turn").settings = {"n": 1}
            assert taken()
        assert not taken()
        with pytest.raises(RuntimeError), write() as session:
            session.add(PluginState(slug="undone", enabled=False, settings={}))
            session.flush()
            raise RuntimeError("rolled back")
        assert not taken()
        assert db.session.get(PluginState, "turn").settings == {"n": 1}
        assert db.session.get(PluginState, "undone") is None


def test_a_writer_stuck_in_its_turn_holds_the_others_only_until_the_turn_timeout(
        app, monkeypatch):
    import fcntl
    import os
    import time
    from pathlib import Path

    from engine import writers
    from engine.db import write
    monkeypatch.setattr(writers, "TURN_TIMEOUT", 0.5)
    stuck = os.open(Path(app.instance_path) / "magnet.db.writers", os.O_RDWR | os.O_CREAT)
    fcntl.flock(stuck, fcntl.LOCK_EX)  # as a shell session left inside write() would
    try:
        started = time.monotonic()
        with app.app_context(), write() as session:
            session.add(PluginState(slug="patient", enabled=False, settings={}))
        waited = time.monotonic() - started
    finally:
        os.close(stuck)
    assert 0.5 <= waited < 5
    with app.app_context():
        assert db.session.get(PluginState, "patient") is not None


def test_the_write_ahead_log_is_checkpointed_between_turns(app):
    from pathlib import Path

    from engine.db import write
    from engine.writers import CHECKPOINT_PAGES
    wal = Path(app.instance_path) / "magnet.db-wal"
    with app.app_context():
        for n in range(1500):  # ~20 KiB a turn: some 9,000 pages in all
            with write() as session:
                session.add(PluginState(slug=f"p{n}", enabled=False, settings={"x": "y" * 20_000}))
        assert db.session.get(PluginState, "p1499") is not None
    # without checkpoints the log would hold every page written (over 35 MB); with SQLite's
    # own, taken inside a commit, it would be reused after 1,000 pages; here it is reused
    # after about as many, checkpointed between turns
    assert wal.stat().st_size < 3 * CHECKPOINT_PAGES * 4096


def test_tiny_writes_are_checkpointed_less_often_than_large_ones(app):
    """How many turns go between two checkpoints follows the log's size at each: a few pages
    a turn stretch it, large turns shorten it."""
    from engine.db import _WRITERS, write
    from engine.writers import CHECKPOINT_EVERY
    with app.app_context():
        queue = _WRITERS[db.engine]
        for n in range(600):
            with write() as session:
                session.add(PluginState(slug=f"t{n}", enabled=False, settings={}))
        tiny = queue.every
        assert tiny > CHECKPOINT_EVERY
        for n in range(600):  # ~10 pages a turn: about a hundred turns make a thousand pages
            with write() as session:
                session.add(PluginState(slug=f"l{n}", enabled=False,
                                        settings={"x": "y" * 40_000}))
        assert queue.every <= 128 < tiny


@pytest.mark.both_backends
def test_a_write_inside_another_commits_with_it_or_not_at_all(app):
    """Also when the inner block runs before the outer one has sent any SQL: the session then
    reports no transaction, yet the inner block must still join the outer one."""
    from engine.db import write

    def add(slug):
        with write() as session:
            session.add(PluginState(slug=slug, enabled=False, settings={}))
            session.flush()

    with app.app_context():
        with pytest.raises(RuntimeError):
            with write():
                add("inner-first")
                raise RuntimeError("the outer block fails after the inner one ended")
        with write():
            add("joined")
            add("joined-too")
        slugs = set(db.session.scalars(select(PluginState.slug)))
    assert "inner-first" not in slugs and {"joined", "joined-too"} <= slugs


@pytest.mark.both_backends
def test_datetimes_come_back_aware_in_utc(app):
    from datetime import timedelta

    from engine.db import write
    local = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with app.app_context():
        with write() as session:
            session.add(PluginState(slug="clock", enabled=False, settings={}, updated_at=local))
        db.session.expire_all()
        stored = db.session.scalars(select(PluginState.updated_at)
                                    .where(PluginState.slug == "clock")).one()
    assert stored == local and stored.tzinfo is not None and stored.utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(app):
    from sqlalchemy.exc import StatementError

    from engine.db import write
    with app.app_context(), pytest.raises(StatementError, match="naive datetime"):
        with write() as session:
            session.add(PluginState(slug="naive", settings={}, updated_at=datetime(2026, 1, 1)))


def test_configuration_layers_and_generated_secret(tmp_path):
    (tmp_path / "magnet.toml").write_text('site_name = "Acme"\nmail_port = 2525\n')
    loaded = config.load(tmp_path, environ={"MAGNET_MAIL_PORT": "587",
                                            "DATABASE_URL": "postgres://u@h/db"})
    assert loaded["SITE_NAME"] == "Acme"  # from the instance file
    assert loaded["MAIL_PORT"] == 587  # the environment wins, typed like the default
    assert loaded["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"
    secret = (tmp_path / "secret_key").read_text()
    assert len(secret) >= 40 and loaded["SECRET_KEY"] == secret
    assert config.load(tmp_path, environ={})["SECRET_KEY"] == secret  # kept across runs
    assert config.load(tmp_path, environ={"SECRET_KEY": "given"})["SECRET_KEY"] == "given"
