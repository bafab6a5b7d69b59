"""Many rows in one statement (`engine.bulk`): what is stored is what a plain INSERT stores."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from engine import bulk
from engine.api.models import IntakeRow
from engine.contacts.models import Visitor
from engine.db import db, write
from engine.events.models import Activity

EVENTS, INTAKE, VISITORS = Activity.__table__, IntakeRow.__table__, Visitor.__table__
AWKWARD = ['say "hi"', "back\\slash", "{braces},commas", "NULL", "", "café ☕", "tab\there",
           "line\nbreak", "  spaced  ", "'quoted'"]


def _events(count: int) -> list[dict]:
    start = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
    return [{"type": "page_view", "contact_id": None,
             "visitor_id": None if i % 3 == 0 else f"v{i}", "url": AWKWARD[i % len(AWKWARD)],
             "properties": {"label": AWKWARD[i % len(AWKWARD)], "n": i, "list": [1, None, "x"],
                            "nested": {"q": '"\\'}},
             "occurred_at": start + timedelta(seconds=i)} for i in range(count)]


@pytest.mark.both_backends
def test_rows_written_in_one_statement_read_back_as_given_in_order(app):
    rows = _events(25)
    with app.app_context():
        with write():
            returned = bulk.insert_rows(db.session.connection(), EVENTS, rows,
                                        returning=("id", "visitor_id"))
        ids = sorted(i for i, _ in returned)
        stored = db.session.execute(
            select(EVENTS.c.id, EVENTS.c.type, EVENTS.c.contact_id, EVENTS.c.visitor_id,
                   EVENTS.c.url, EVENTS.c.properties, EVENTS.c.occurred_at)
            .where(EVENTS.c.id.in_(ids)).order_by(EVENTS.c.id)).all()
    assert len(stored) == 25
    # ids ascend in the order the rows were given: the events' order on the timeline
    assert [row.occurred_at for row in stored] == [r["occurred_at"] for r in rows]
    for row, given in zip(stored, rows, strict=True):
        assert (row.type, row.contact_id, row.visitor_id, row.url, row.properties) == (
            given["type"], None, given["visitor_id"], given["url"], given["properties"])
    assert dict(returned) == {row.id: row.visitor_id for row in stored}


@pytest.mark.both_backends
def test_conflicting_rows_are_left_out_and_only_new_ones_returned(app):
    received = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)

    def row(key: str, email: str) -> dict:
        return {"api_key_id": None, "idempotency_key": key, "request_hash": "h",
                "email": email, "type": "purchase", "properties": {}, "occurred_at": None,
                "received_at": received}

    with app.app_context():
        with write():
            # NULL keys never conflict; "a" twice in one statement is stored once
            first = bulk.insert_rows(db.session.connection(), INTAKE,
                                     [row("a", "one@example.com"), row("a", "two@example.com")],
                                     returning=("id",), skip_conflicts=("api_key_id",
                                                                        "idempotency_key"))
        with write():
            again = bulk.insert_rows(db.session.connection(), INTAKE,
                                     [row("a", "three@example.com"), row("b", "four@example.com")],
                                     returning=("idempotency_key",),
                                     skip_conflicts=("api_key_id", "idempotency_key"))
        emails = db.session.scalars(select(INTAKE.c.email).order_by(INTAKE.c.id)).all()
    # NULL api_key_id: a unique key with a NULL never conflicts, so every row is kept
    assert len(first) == 2 and len(again) == 2
    assert emails == ["one@example.com", "two@example.com", "three@example.com",
                      "four@example.com"]


@pytest.mark.both_backends
def test_an_upsert_overwrites_only_the_columns_named(app):
    """`overwrite`: a row whose key is there sets the named columns of the row there and
    nothing else; a new key is inserted whole (its Python defaults filled in)."""
    first, later = datetime(2026, 12, 4, 9, 0, tzinfo=UTC), datetime(2026, 12, 5, 9, 0, tzinfo=UTC)

    def row(vid: str, seen: datetime) -> dict:
        return {"id": vid, "first_seen": seen, "last_seen": seen, "contact_id": None}

    with app.app_context():
        with write():
            bulk.insert_rows(db.session.connection(), VISITORS, [row("a" * 32, first)])
            db.session.execute(VISITORS.update().values(trust=2))
        with write():
            returned = bulk.insert_rows(db.session.connection(), VISITORS,
                                        [row("a" * 32, later), row("b" * 32, later)],
                                        skip_conflicts=("id",), overwrite=("last_seen",))
        stored = db.session.execute(select(VISITORS.c.id, VISITORS.c.first_seen,
                                           VISITORS.c.last_seen, VISITORS.c.trust)
                                    .order_by(VISITORS.c.id)).all()
    assert returned == []
    assert [tuple(r) for r in stored] == [("a" * 32, first, later, 2), ("b" * 32, later, later, 0)]
    with pytest.raises(ValueError, match="skip_conflicts"):
        bulk.insert_rows(None, VISITORS, [row("c" * 32, later)], overwrite=("last_seen",))


@pytest.mark.both_backends
def test_updates_change_only_the_rows_named(app):
    with app.app_context():
        with write():
            ids = sorted(i for (i,) in bulk.insert_rows(
                db.session.connection(), EVENTS, _events(6), returning=("id",)))
        later = datetime(2027, 1, 1, tzinfo=UTC)
        with write():
            updated = bulk.update_rows(db.session.connection(), EVENTS, [
                {"id": ids[1], "url": 'new "one"', "occurred_at": later},
                {"id": ids[4], "url": "new\\two", "occurred_at": later},
                {"id": ids[-1] + 1000, "url": "nobody", "occurred_at": later}])
        stored = dict(db.session.execute(select(EVENTS.c.id, EVENTS.c.url)
                                         .where(EVENTS.c.id.in_(ids))).all())
    assert updated == 2
    assert stored[ids[1]] == 'new "one"' and stored[ids[4]] == "new\\two"
    assert [stored[i] for i in (ids[0], ids[2], ids[3], ids[5])] == [
        AWKWARD[0], AWKWARD[2], AWKWARD[3], AWKWARD[5]]


@pytest.mark.both_backends
def test_a_value_too_long_for_its_column_is_refused_not_cut(app, backend):
    if backend != "postgresql":
        pytest.skip("SQLite does not hold strings to their declared length")
    too_long = dict(_events(1)[0], visitor_id="x" * 33)  # visitor_id is String(32)
    with app.app_context():
        with pytest.raises(DBAPIError), write():
            bulk.insert_rows(db.session.connection(), EVENTS, [_events(2)[1], too_long])
        assert db.session.scalar(select(EVENTS.c.id).limit(1)) is None


@pytest.mark.both_backends
def test_rows_sharing_one_value_and_rows_beyond_one_statement_are_stored_as_given(app):
    """A value object shared by rows is bound once (SQLite), then a new object afresh; more
    rows than one statement takes go in several."""
    shared, other = {"source": "api"}, {"source": "form"}
    moment = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
    rows = [{"type": "purchase", "contact_id": None, "visitor_id": f"v{i}", "url": "",
             "properties": other if i % 500 == 7 else shared, "occurred_at": moment}
            for i in range(bulk.SQLITE_ROWS + 20)]
    with app.app_context():
        with write():
            ids = sorted(i for (i,) in bulk.insert_rows(db.session.connection(), EVENTS, rows,
                                                        returning=("id",)))
        stored = db.session.execute(select(EVENTS.c.visitor_id, EVENTS.c.properties)
                                    .where(EVENTS.c.id.in_(ids)).order_by(EVENTS.c.id)).all()
    assert [(row.visitor_id, row.properties) for row in stored] == [
        (given["visitor_id"], given["properties"]) for given in rows]
