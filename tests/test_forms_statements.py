"""What one submission costs the database, counted in SQL statements.

The submission's transaction holds SQLite's only write lock while it runs, so every statement in
it is paid by every other visitor waiting to submit; these tests keep the hot path from quietly
growing again (a lazy load, an ORM flush of an unchanged row, a lookup a new contact cannot need).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, select

from engine.contacts.models import Contact, Subscription
from engine.db import db
from engine.forms import service as forms
from engine.forms.models import Submission
from engine.jobs import outbox
from engine.jobs.outbox import OutboxRow
from tests.forms_support import EBOOK, forms_site, post, token_of

pytestmark = pytest.mark.both_backends

QUIET = '"""A plugin that implements no hook."""\n'


class Transactions:
    """The statements sent to the database, grouped by transaction (BEGINs left out)."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []

    def begin(self, _connection) -> None:  # type: ignore[no-untyped-def]
        self.groups.append([])

    def statement(self, _conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        words = statement.split()
        if words[0].upper() != "BEGIN" and self.groups:
            self.groups[-1].append(" ".join(words[:3]).upper())

    def writing(self, table: str) -> list[str]:
        """The statements of the one transaction that inserted into `table`."""
        [group] = [g for g in self.groups if f"INSERT INTO {table.upper()}" in g]
        return group

    def all(self) -> list[str]:
        return [s for group in self.groups for s in group]


@pytest.fixture
def counted(make_app, make_plugins):
    """A site whose only plugin listens to nothing, and a way to count what a block sends."""
    app = forms_site(make_app, PLUGINS_PATH=str(make_plugins(quiet=QUIET)))

    @contextmanager
    def count() -> Iterator[Transactions]:
        seen = Transactions()
        with app.app_context():
            engine = db.engine
        event.listen(engine, "begin", seen.begin)
        event.listen(engine, "before_cursor_execute", seen.statement)
        try:
            yield seen
        finally:
            event.remove(engine, "before_cursor_execute", seen.statement)
            event.remove(engine, "begin", seen.begin)
    return app, count


def test_a_new_contacts_submission_is_eight_statements_in_one_transaction(counted):
    app, count = counted
    post(app.test_client(), "ebook", {**EBOOK, "email": "first@example.com"})  # makes the tag
    client = app.test_client()
    token = token_of(client, "ebook")  # the form's page is not part of the submission
    with count() as seen:
        assert post(client, "ebook", EBOOK, token=token).status_code == 303
    write = seen.writing("form_submissions")
    assert sorted(write) == sorted([
        "INSERT INTO CONTACTS", "INSERT INTO CONTACT_TAGS", "INSERT INTO LIST_SUBSCRIPTIONS",
        "INSERT INTO FORM_SUBMISSIONS", "INSERT INTO VISITORS", "INSERT INTO OUTBOX",
        # every event of the submission (contact created, tag added, list joined, form
        # submitted) in one INSERT, and their places in the delivery queue in another
        "INSERT INTO ACTIVITIES", "INSERT INTO EVENT_QUEUE"])
    with app.app_context():  # and what the eight stored is the whole submission
        contact = db.session.scalars(select(Contact)
                                     .where(Contact.email == "jane@example.com")).one()
        assert (contact.first_name, contact.consent) == ("Jane", "granted")
        assert [t.name for t in contact.tags] == ["ebook"]
        assert db.session.scalars(select(Subscription.status).where(
            Subscription.contact_id == contact.id)).one() == "subscribed"


def test_a_returning_contacts_submission_reads_it_once_and_writes_only_changes(counted):
    app, count = counted
    client = app.test_client()
    post(client, "ebook", EBOOK)
    token = token_of(client, "ebook")  # a known visitor now: the next profiling questions
    with count() as seen:
        response = post(client, "ebook", {"company": "Acme", "country": "DE"}, token=token)
        assert response.status_code == 303
    write = seen.writing("form_submissions")
    # the new company (looked up, created); the contact (insert-or-nothing, read, update); tags
    # (already there: so checked); list; submission; the visitor's row and its earlier
    # activity; outbox; the events (field changes, submission) and their queue rows
    assert len(write) <= 14, write
    assert write.count("SELECT CONTACTS.ID, CONTACTS.MERGED_INTO_ID,") == 1
    assert write.count("UPDATE CONTACTS SET") == 1
    with app.app_context():
        contact = db.session.scalars(select(Contact)).one()
        assert (contact.company.name, contact.country, contact.first_name) == ("Acme", "DE", "Jane")


def test_a_follow_up_nobody_listens_to_loads_nothing(counted):
    app, count = counted
    post(app.test_client(), "ebook", EBOOK)
    with app.app_context():  # the definition as the process keeps it (for 2 s: a slow
        forms.get("ebook")   # machine may take longer than that between the two steps)
    with count() as seen, app.app_context():
        assert outbox.run_batch("default") == 1
    # claim the row, mark it done, find nothing more to claim: the submission and its contact
    # are never read
    assert seen.all() == ["UPDATE OUTBOX SET"] * 3
    with app.app_context():
        assert db.session.scalars(select(OutboxRow.status)).one() == "done"
        assert db.session.scalars(select(Submission)).one().contact_id is not None
