"""When Redis is unreachable, pages with smart blocks still render: known visitors see the
default (their profile cannot be read), anonymous rules still work, nothing reaches the visitor
as an error; and an erased person's browsers are forgotten."""
from __future__ import annotations

import json
import os
import signal
import socket
import time

from engine.contacts import visitors
from engine.jobs.connection import connection
from engine.jobs.embedded import EmbeddedRedis
from plugins.smart_content import profiles
from plugins.smart_content.tests.support import LINKEDIN, SALES, block, page, trusted_contact


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_pages_render_when_redis_is_down(make_app):
    app = make_app()
    block(app, "cta", [SALES, LINKEDIN])
    page(app, "offer", "[smart cta]")
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{closed_port()}/0"
    app.extensions.pop("magnet.redis", None)
    client = app.test_client()
    with app.test_request_context():
        client.set_cookie(visitors.COOKIE, visitors.cookie_value("d" * 32))
    response = client.get("/offer?utm_source=linkedin")
    assert response.status_code == 200
    assert "Welcome, LinkedIn reader!" in response.get_data(as_text=True)


def test_an_erased_persons_browsers_are_forgotten(make_app):
    from engine.contacts import gdpr
    app = make_app()
    block(app, "cta", [SALES])
    vid = "e" * 32
    contact_id = trusted_contact(app, "eve@example.com", vid, lifecycle_stage="sales_qualified")
    with app.app_context():
        assert profiles.lookup(vid)["c"] == contact_id
        gdpr.erase_contact(contact_id, actor="tests")
        assert connection().get(profiles.KEY + vid) is None


def test_a_frozen_redis_costs_a_known_visitors_page_a_moment_not_seconds(make_app, tmp_path):
    """Redis stopped (SIGSTOP) while a known visitor browses: the profile read gives up after a
    quarter second and the page shows the default; once Redis is back, their variant again."""
    server = EmbeddedRedis(tmp_path / "own-redis")
    server.start()
    try:
        app = make_app(REDIS_URL=server.url)
        block(app, "cta", [SALES])
        page(app, "offer", "[smart cta]")
        vid = "f" * 32
        trusted_contact(app, "fay@example.com", vid, lifecycle_stage="sales_qualified")
        client = app.test_client()
        with app.test_request_context():
            client.set_cookie(visitors.COOKIE, visitors.cookie_value(vid))
        assert "Talk to sales" in client.get("/offer").get_data(as_text=True)
        pid = int(server.pidfile.read_text())
        os.kill(pid, signal.SIGSTOP)
        try:  # what the process remembered is fresh for a quarter second: past it, Redis is read
            app.extensions[profiles.MEMO].clear()
            started = time.monotonic()
            frozen = client.get("/offer")
            took = time.monotonic() - started
        finally:
            os.kill(pid, signal.SIGCONT)
        assert frozen.status_code == 200 and "Read our guide." in frozen.get_data(as_text=True)
        assert took < 2.0, took
        assert "Talk to sales" in client.get("/offer").get_data(as_text=True)
    finally:
        server.stop()


def test_a_profile_change_reaches_a_process_that_remembered_the_old_one(make_app):
    """A web process remembers profiles it read; a change written by another process (the
    worker) moves the stamp, and the next read past a quarter second sees the new profile."""
    app = make_app()
    block(app, "cta", [SALES])
    vid = "a" * 32
    contact_id = trusted_contact(app, "ann@example.com", vid, lifecycle_stage="lead")
    with app.app_context():
        assert profiles.lookup(vid)["stage"] == "lead"
        # another process rewrites the profile: Redis changes, this process's memo does not
        changed = dict(profiles.lookup(vid), stage="sales_qualified")
        pipe = connection().pipeline()
        pipe.set(profiles.KEY + vid, json.dumps(changed)).incr(profiles.STAMP).execute()
        assert profiles.lookup(vid)["stage"] == "lead"  # within the quarter second
        app.extensions[profiles.MEMO].read_at -= profiles.STAMP_TTL  # a quarter second later
        assert profiles.lookup(vid) == {**changed, "c": contact_id}
