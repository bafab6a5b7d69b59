"""pytest fixtures for the engine's and plugins' tests (loaded by the root `conftest.py`).

Real parts, not mocks: every app gets its own SQLite file (copied from a database migrated once
per session) and a real Redis (an embedded one per test process, or `MAGNET_TEST_REDIS_URL`).
Tests marked `both_backends` run again on PostgreSQL when `MAGNET_TEST_DATABASE_URL` is set:
each such test gets a fresh database cloned from a migrated template.
"""
from __future__ import annotations

import itertools
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from engine import create_app, migrate
from engine.app import shut_down
from engine.db import db
from engine.jobs.embedded import EmbeddedRedis

PG_URL = os.environ.get("MAGNET_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("MAGNET_TEST_REDIS_URL", "")
_counter = itertools.count()


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "both_backends: run on SQLite and, when configured, "
                                       "on PostgreSQL too")


def pytest_generate_tests(metafunc: Any) -> None:
    if "backend" in metafunc.fixturenames:
        both = metafunc.definition.get_closest_marker("both_backends") is not None
        params = ["sqlite", "postgresql"] if both and PG_URL else ["sqlite"]
        metafunc.parametrize("backend", params, indirect=True)


@pytest.fixture
def backend(request: Any) -> str:
    return getattr(request, "param", "sqlite")


def _worker_index() -> int:
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name[2:]) if name[2:].isdigit() else 0


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: Any) -> Iterator[str]:
    """A Redis for this test process: MAGNET_TEST_REDIS_URL (one db per xdist worker) or an
    embedded server, stopped when the session ends."""
    if REDIS_URL:
        url = make_url_with_db(REDIS_URL, 1 + _worker_index())
        yield url
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def make_url_with_db(url: str, index: int) -> str:
    base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url
    return f"{base}/{index}"


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: Any) -> Path:
    folder = tmp_path_factory.mktemp("template")
    app = create_app({"TESTING": True}, instance_path=folder)
    migrate.upgrade(app)
    with app.app_context():
        db.engine.dispose()
    return folder / "magnet.db"


@pytest.fixture(scope="session")
def _pg_template() -> Iterator[str | None]:
    if not PG_URL:
        yield None
        return
    name = f"magnet_tpl_{os.getpid()}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url},
                     instance_path=Path(f"/tmp/magnet-pg-template-{os.getpid()}"))
    migrate.upgrade(app)
    with app.app_context():
        db.engine.dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def _pg_admin() -> Any:
    url = make_url(PG_URL)
    url = url.set(drivername="postgresql+psycopg", database="postgres")
    return create_engine(url, isolation_level="AUTOCOMMIT")


@pytest.fixture
def make_app(tmp_path: Path, redis_url: str, backend: str, _sqlite_template: Path,
             _pg_template: str | None) -> Iterator[Callable[..., Flask]]:
    """`make_app(**config)`: a migrated app in its own instance folder and database.

    Redis is emptied for each new app, so queued jobs never leak from one test to the next.
    """
    apps: list[Flask] = []
    pg_databases: list[str] = []

    def factory(instance: Path | None = None, fresh_db: bool = False, **config: Any) -> Flask:
        instance = instance or tmp_path / f"instance{next(_counter)}"
        instance.mkdir(parents=True, exist_ok=True)
        overrides: dict[str, Any] = {"TESTING": True, "REDIS_URL": redis_url,
                                     "SITE_URL": "http://localhost", **config}
        copied = False  # a copy of the template, migrated by this session for the same plugins
        if backend == "postgresql" and "SQLALCHEMY_DATABASE_URI" not in config:
            name = f"magnet_t_{os.getpid()}_{uuid.uuid4().hex[:8]}"
            with _pg_admin().connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{_pg_template}"'))
            pg_databases.append(name)
            copied = True
            overrides["SQLALCHEMY_DATABASE_URI"] = make_url(PG_URL).set(
                database=name).render_as_string(hide_password=False)
        elif not fresh_db and not (instance / "magnet.db").exists() \
                and "SQLALCHEMY_DATABASE_URI" not in config:
            shutil.copy(_sqlite_template, instance / "magnet.db")
            copied = True
        redis_lib.Redis.from_url(redis_url).flushdb()
        app = create_app(overrides, instance_path=instance)
        if copied and "PLUGINS_PATH" not in config:
            # At the heads already: checking it again (every branch's scripts and version
            # rows) cost each test over half a second.
            with app.app_context():
                app.extensions["magnet.plugins"].refresh(force=True)
        else:  # other plugins may bring migrations of their own
            migrate.upgrade(app)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        shut_down(app)  # what plugins hold in memory reaches Redis now, not in the next test
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        client = app.extensions.get("magnet.redis")
        if client is not None:
            client.close()
    if pg_databases:
        admin = _pg_admin()
        with admin.connect() as conn:
            for name in pg_databases:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()


def run_jobs(app: Flask, queues: list[str] | None = None) -> None:
    """Run every queued job with a real RQ worker (in burst mode) in this process."""
    from engine.jobs.connection import client_for
    from engine.jobs.worker import run_worker
    run_worker(app, client_for(app), queues, burst=True)


@pytest.fixture
def work() -> Callable[..., None]:
    """`work(app)`: drain the queues with a real worker, as `magnet worker --burst` would."""
    return run_jobs


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The app served over HTTP on a free loopback port, for browsers and HTTP clients."""
    import threading

    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


CHROMIUM = os.environ.get("MAGNET_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A real headless Chromium (Debian's), driven by Playwright."""
    from playwright.sync_api import sync_playwright
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}; install Debian's chromium package")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page; closed after the test."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def shots(tmp_path: Path) -> Callable[..., None]:
    """`shots(page, name)`: full-page screenshots at 1280 and 375 px wide, into
    MAGNET_SCREENSHOTS (to look at them) or the test's folder (`shots.folder`)."""
    folder = Path(os.environ.get("MAGNET_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str) -> None:
        for width in (1280, 375):
            page.set_viewport_size({"width": width, "height": 900})
            page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})
    take.folder = folder  # type: ignore[attr-defined]
    return take


@pytest.fixture
def make_plugins(tmp_path: Path) -> Callable[..., Path]:
    """`make_plugins(slug=source, ...)`: write plugin packages into a fresh plugins folder and
    return it, for `make_app(PLUGINS_PATH=folder)`. Each call gets a uniquely named folder, so
    its modules never clash with another test's."""
    import textwrap

    def factory(**sources: str) -> Path:
        folder = tmp_path / f"testplugins_{uuid.uuid4().hex[:10]}"
        for slug, source in sources.items():
            (folder / slug).mkdir(parents=True)
            (folder / slug / "__init__.py").write_text(textwrap.dedent(source))
        return folder
    return factory


class SMTPSink:
    """What the `smtp_server` fixture collects: every message received, parsed."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.host, self.port = "127.0.0.1", 0
        self.delay = 0.0  # seconds each message takes to be accepted, like a remote server

    @property
    def config(self) -> dict[str, Any]:
        """The app settings that send to this server (`make_app(**smtp_server.config)`)."""
        return {"MAIL_HOST": self.host, "MAIL_PORT": self.port}

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import asyncio
        from email import message_from_bytes, policy
        if self.delay:
            await asyncio.sleep(self.delay)
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[SMTPSink]:
    """A real SMTP server (aiosmtpd) on a free loopback port, collecting what it receives."""
    import socket

    from aiosmtpd.controller import Controller
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = SMTPSink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    sink.port = port
    try:
        yield sink
    finally:
        controller.stop()


def traces_of(app: Flask, needles: list[str]) -> dict[str, list[str]]:
    """`{"table.column": [values]}` for every value, in every column of every table in the
    database (plugins' included, found by reflection), that contains one of `needles`
    (case-insensitive): where a person left a trace. For GDPR tests."""
    from sqlalchemy import MetaData, select
    found: dict[str, list[str]] = {}
    lowered = [needle.lower() for needle in needles]
    with app.app_context():
        metadata = MetaData()
        metadata.reflect(db.engine)
        with db.engine.connect() as connection:
            for table in metadata.sorted_tables:
                for row in connection.execute(select(table)):
                    for column, value in zip(table.columns, row):
                        text_value = str(value).lower()
                        if value is not None and any(n in text_value for n in lowered):
                            found.setdefault(f"{table.name}.{column.name}", []).append(str(value))
    return found


@pytest.fixture
def clock() -> Iterator[Any]:
    """The engine's clock (`engine.db.clock`), to move time forward: `clock.advance(days=3)`.
    Put back when the test ends."""
    from datetime import timedelta

    from engine.db import clock as engine_clock

    class Controlled:
        def advance(self, **delta: float) -> None:
            engine_clock.offset += timedelta(**delta)

        def now(self) -> Any:
            return engine_clock.now()

    saved = engine_clock.offset
    try:
        yield Controlled()
    finally:
        engine_clock.offset = saved


def deliver_events(app: Flask) -> int:
    """Deliver every queued event to `on_event` here, as a worker would; returns how many."""
    from engine.events.delivery import deliver_next
    total, start = 0, 0
    with app.app_context():
        while True:
            delivered, start = deliver_next(start)
            if not delivered:
                return total
            total += delivered


def drain_intake(app: Flask) -> int:
    """Store every event the API has accepted, here, as the drain job would (without its
    gather wait); returns how many intake rows were processed."""
    from engine.api.drain import drain_next
    total = 0
    with app.app_context():
        while True:
            drained = drain_next()
            if not drained:
                return total
            total += drained


def start_worker(app: Flask, **env: str) -> Any:
    """A real `magnet worker` process on the app's instance folder, database and Redis (with
    `env` added), in a process group of its own; the caller stops it with `stop_worker`."""
    import subprocess
    import sys
    environ = {**os.environ, "MAGNET_INSTANCE_PATH": app.instance_path,
               "REDIS_URL": app.config["REDIS_URL"], "MAGNET_SITE_URL": app.config["SITE_URL"],
               "MAGNET_PLUGINS_PATH": app.config["PLUGINS_PATH"],
               "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], **env}
    if app.config.get("MAIL_HOST"):
        environ.update(MAGNET_MAIL_HOST=app.config["MAIL_HOST"],
                       MAGNET_MAIL_PORT=str(app.config["MAIL_PORT"]))
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "worker"], env=environ,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def stop_worker(worker: Any, kill: bool = False) -> str:
    """Stop a `start_worker` process and the scheduler it forked (its process group: a worker
    killed on its own would leave that child running); returns what it wrote to stderr.

    Never raises: a worker that ignores SIGTERM for 30 s is killed. (Raising left the next
    worker of a test's list running, and it went on taking the jobs of later tests that share
    its Redis database.)"""
    import signal
    import subprocess
    try:
        os.killpg(worker.pid, signal.SIGKILL if kill else signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        return worker.communicate(timeout=30)[1].decode()
    except subprocess.TimeoutExpired:
        try:
            os.killpg(worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        written = worker.communicate()[1] or b""
        return written.decode() + "\n(the worker did not stop within 30 s of SIGTERM: killed)"
    finally:
        try:
            os.killpg(worker.pid, signal.SIGKILL)  # whatever of the group is still there
        except ProcessLookupError:
            pass


def age_claims(app: Flask) -> None:
    """Age a dead worker's send claims past `STALE_CLAIM` and its outbox leases, in the
    database (another worker's clock is its own): what waiting that long would do."""
    from datetime import timedelta

    from sqlalchemy import update

    from engine.db import utcnow, write
    from engine.jobs.outbox import OutboxRow
    from engine.mail.ledger import STALE_CLAIM
    from engine.mail.models import MailSend
    then = utcnow() - timedelta(seconds=app.config["OUTBOX_LEASE_SECONDS"]) - STALE_CLAIM
    with app.app_context(), write() as session:
        session.execute(update(MailSend).where(MailSend.status == "sending").values(
            claimed_at=then))
        session.execute(update(OutboxRow).where(OutboxRow.status == "running").values(
            claimed_at=then))


def wait_until(condition: Callable[[], Any], seconds: float = 60.0) -> bool:
    """Poll `condition` until it holds (True) or `seconds` pass (False): for work other
    processes do, never to let time pass."""
    import time
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False
