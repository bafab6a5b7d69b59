"""What happens after a submission's commit: hooks in a worker, retried when Redis was away."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.db import db
from engine.forms.models import Submission
from engine.jobs import outbox
from engine.jobs.embedded import EmbeddedRedis
from engine.jobs.outbox import OutboxRow
from tests.forms_support import EBOOK, forms_site, post

RECORDER = '''
"""Records the hooks it receives, one JSON line each."""
import json, os
from engine.plugins import hookimpl

DEFAULT_ENABLED = True
LOG = os.environ["MAGNET_TEST_HOOK_LOG"]

def _write(**row):
    with open(LOG, "a") as fh:
        fh.write(json.dumps(row) + "\\n")

@hookimpl
def on_form_submitted(submission, contact):
    _write(hook="on_form_submitted", form=submission.form_slug, email=contact.email,
           raw=submission.raw["email"])

@hookimpl
def on_contact_created(contact):
    _write(hook="on_contact_created", email=contact.email)

@hookimpl
def on_contact_updated(contact, changes):
    _write(hook="on_contact_updated", email=contact.email, changes=changes)
'''


@pytest.fixture
def hook_log(tmp_path, monkeypatch) -> Path:
    log = tmp_path / "hooks.jsonl"
    monkeypatch.setenv("MAGNET_TEST_HOOK_LOG", str(log))
    return log


@pytest.fixture
def recorded(make_app, make_plugins, hook_log):
    app = forms_site(make_app, PLUGINS_PATH=str(make_plugins(recorder=RECORDER)), fresh_db=True)

    def read() -> list[dict]:
        return ([json.loads(line) for line in hook_log.read_text().splitlines()]
                if hook_log.exists() else [])
    return app, read


def test_hook_on_form_submitted(recorded, work):
    app, read = recorded
    post(app.test_client(), "ebook", EBOOK)
    assert [r for r in read() if r["hook"] == "on_form_submitted"] == []  # not in the request
    work(app)
    rows = [r for r in read() if r["hook"] == "on_form_submitted"]
    assert rows == [{"hook": "on_form_submitted", "form": "ebook", "email": "jane@example.com",
                     "raw": "Jane@Example.com"}]
    work(app)
    assert len([r for r in read() if r["hook"] == "on_form_submitted"]) == 1  # once


def test_hook_on_contact_created(recorded, work, tmp_path):
    app, read = recorded
    post(app.test_client(), "ebook", EBOOK)
    work(app)
    assert [r for r in read() if r["hook"] == "on_contact_created"] == [
        {"hook": "on_contact_created", "email": "jane@example.com"}]
    people = tmp_path / "people.csv"  # imported contacts are announced too, in batches
    people.write_text("email\nann@example.com\njane@example.com\nbob@example.com\n")
    assert app.test_cli_runner().invoke(args=["contacts", "import", str(people)]).exit_code == 0
    work(app)
    created = [r["email"] for r in read() if r["hook"] == "on_contact_created"]
    assert created == ["jane@example.com", "ann@example.com", "bob@example.com"]


def test_hook_on_contact_updated(recorded, work):
    app, read = recorded
    client = app.test_client()
    post(client, "ebook", EBOOK)
    post(client, "ebook", {"company": "Acme", "country": "FR"})
    work(app)
    updates = [r for r in read() if r["hook"] == "on_contact_updated"]
    assert updates == [{"hook": "on_contact_updated", "email": "jane@example.com",
                        "changes": {"company": ["", "Acme"], "country": ["", "FR"]}}]
    assert [r["hook"] for r in read()].count("on_contact_created") == 1


def test_with_redis_stopped_submissions_succeed_and_follow_ups_run_when_it_is_back(
        make_app, make_plugins, hook_log, tmp_path, work):
    server = EmbeddedRedis(tmp_path / "redis-outage")
    server.start()
    try:
        app = forms_site(make_app, REDIS_URL=server.url, FORM_RATE_LIMIT_IP=50,
                         PLUGINS_PATH=str(make_plugins(recorder=RECORDER)), fresh_db=True)
        server.stop()
        statuses = [post(app.test_client(), "ebook",
                         {**EBOOK, "email": f"p{i}@example.com"}).status_code
                    for i in range(5)]
        assert statuses == [303] * 5
        with app.app_context():
            assert len(db.session.scalars(select(Submission)).all()) == 5
            assert {r.status for r in db.session.scalars(select(OutboxRow))} == {"pending"}
        assert not hook_log.exists()

        server.start()
        with app.app_context():
            assert outbox.sweep() == 5
        work(app)
        submitted = [line for line in hook_log.read_text().splitlines()
                     if "on_form_submitted" in line]
        assert len(submitted) == 5
        with app.app_context():
            assert {r.status for r in db.session.scalars(select(OutboxRow))} == {"done"}
    finally:
        server.stop()
