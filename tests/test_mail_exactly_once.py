"""Nothing sent twice, under the load that used to send duplicates on SQLite.

A slow SMTP server (200 ms a message, as a remote one), two worker processes and a form posted
three times a second: the web process and both workers write to one SQLite file at once. Every
follow-up email must arrive exactly once, and a retried message must carry its first
Message-ID.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.db import db, write
from engine.jobs.outbox import OutboxRow
from engine.mail.models import MailMessage
from engine.testing import start_worker, stop_worker
from tests.forms_support import forms_site, post

LOAD_SECONDS = 15
PER_SECOND = 3


def _post_steadily(app: Any, sent: list[str]) -> None:
    for n in range(LOAD_SECONDS * PER_SECOND):
        started = time.monotonic()
        client = app.test_client()  # each submission from another visitor's browser
        email = f"person{n}@example.com"
        slug = "webinar" if n % 2 else "newsletter"
        data = {"email": email, "first_name": "P", "consent": "y"}
        if post(client, slug, data).status_code == 303:
            sent.append(email)
        time.sleep(max(0.0, 1 / PER_SECOND - (time.monotonic() - started)))


def _drained(app: Any) -> bool:
    with app.app_context():
        waiting = db.session.scalar(select(func.count()).select_from(OutboxRow).where(
            OutboxRow.status.in_(("pending", "running"))))
        db.session.rollback()
    return waiting == 0


@pytest.mark.slow
def test_two_workers_and_a_slow_smtp_server_send_each_email_once(make_app, smtp_server):
    smtp_server.delay = 0.2
    app = forms_site(make_app, **smtp_server.config)
    workers = [start_worker(app) for _ in range(2)]
    try:
        submitted: list[str] = []
        poster = threading.Thread(target=_post_steadily, args=(app, submitted))
        poster.start()
        poster.join()
        deadline = time.monotonic() + 120
        while not _drained(app) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1)  # a duplicate would be sent by a retry right after the drain
    finally:
        errors = [stop_worker(worker) for worker in workers]
    assert _drained(app), errors
    with app.app_context():
        logged = db.session.scalar(select(func.count()).select_from(MailMessage))
        statuses = Counter(db.session.scalars(select(MailMessage.status)))
    ids = Counter(message["Message-ID"] for message in smtp_server.messages)
    people = Counter(message["Reply-To"] or message["To"] for message in smtp_server.messages)
    assert len(submitted) == LOAD_SECONDS * PER_SECOND
    assert logged == len(submitted)  # one notification or one confirmation per submission
    assert statuses == {"sent": logged}
    assert [m for m, n in ids.items() if n > 1] == []
    assert [p for p, n in people.items() if n > 1] == []
    assert len(smtp_server.messages) == logged
    assert not any("database is locked" in text for text in errors), errors


def test_a_retry_resends_a_message_with_its_first_message_id(make_app, smtp_server, work):
    """The worker died after SMTP accepted the message and before it was marked: the retry
    sends the same message again, which a receiver can recognise as one."""
    from datetime import timedelta

    from engine import mail
    from engine.mail.messages import STALE_CLAIM, send_messages
    app = make_app(**smtp_server.config)
    with app.app_context():
        with write():
            row = mail.send("jane@example.com", "Hello", "<p>Hi</p>")
        first_id = row.message_id
        assert first_id  # the identity exists before any attempt to send
        with write() as session:  # as a dead worker leaves it: claimed, never marked
            session.execute(MailMessage.__table__.update().values(
                status="sending", claimed_at=row.created_at - STALE_CLAIM - timedelta(seconds=1)))
        assert send_messages([row.id]) == 1
        assert send_messages([row.id]) == 0  # sent now: never again
        db.session.rollback()
        assert db.session.get(MailMessage, row.id).status == "sent"
    assert [m["Message-ID"] for m in smtp_server.messages] == [first_id]


def test_a_message_another_worker_is_sending_is_left_to_it(make_app, smtp_server):
    from engine import mail
    from engine.db import utcnow
    from engine.mail.messages import ClaimedElsewhere, send_messages
    app = make_app(**smtp_server.config)
    with app.app_context():
        with write():
            row = mail.send("jane@example.com", "Hello", "<p>Hi</p>")
        with write() as session:
            session.execute(MailMessage.__table__.update().values(status="sending",
                                                                  claimed_at=utcnow()))
        with pytest.raises(ClaimedElsewhere):  # the outbox retries later, nothing is lost
            send_messages([row.id])
    assert smtp_server.messages == []


def test_changes_made_outside_a_write_are_refused_not_committed_later(app):
    """The class of the duplicate-email bug: an ORM change left pending outside `write()` was
    committed by the next `write()` as a late write of a read transaction."""
    from engine import mail
    from engine.db import ChangedOutsideWrite
    with app.app_context():
        with write():
            row = mail.send("jane@example.com", "Hello", "<p>Hi</p>")
        row.subject = "Changed outside"
        with pytest.raises(ChangedOutsideWrite):
            with write():
                pass
        db.session.rollback()
        assert db.session.get(MailMessage, row.id).subject == "Hello"


def test_sqlite_refuses_a_statement_that_writes_outside_a_write(app):
    from engine.db import ChangedOutsideWrite
    with app.app_context():
        with pytest.raises(ChangedOutsideWrite):
            db.session.execute(MailMessage.__table__.delete())
        db.session.rollback()


def test_a_message_sent_to_a_contact_is_an_event_of_theirs(make_app, smtp_server, work):
    """The double opt-in email is the contact's; the owner's notification about them is not."""
    from engine.events.models import Activity
    from tests.forms_support import forms_site
    app = forms_site(make_app, **smtp_server.config)
    client = app.test_client()
    post(client, "newsletter", {"email": "nina@example.com", "first_name": "Nina"})
    post(app.test_client(), "webinar", {"email": "nina@example.com", "first_name": "Nina",
                                        "consent": "y"})
    work(app)
    assert len(smtp_server.messages) == 2
    with app.app_context():
        sent = list(db.session.scalars(select(Activity).where(Activity.type == "email_sent")))
    assert [e.properties["subject"] for e in sent] == [
        next(m["Subject"] for m in smtp_server.messages if m["To"] == "nina@example.com")]
