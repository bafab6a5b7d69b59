"""The browser's time zone: sent with page views, checked, kept on the visit, and given to the
contact the browser belongs to, only when it changes."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select

from engine.contacts import identity
from engine.contacts.models import Contact
from engine.contacts.timezones import BROWSER_FIELD, zone_of
from engine.db import db, write
from plugins.tracking import clean, on_form_submitted
from plugins.tracking.models import Visit
from plugins.tracking.tests.helpers import drain, events, send


def test_only_names_the_tz_database_knows_are_kept():
    assert clean.time_zone("America/Sao_Paulo") == "America/Sao_Paulo"
    for bad in ("Mars/Olympus_Mons", "europe/berlin", "Europe/Berlin\x00", "../../etc/passwd",
                "Europe/" + "x" * 100, "", 42, ["Europe/Berlin"], {"z": 1}, None):
        assert clean.time_zone(bad) == ""


def test_a_page_view_keeps_its_browsers_zone_on_the_visit_and_drops_a_bad_one(app, client):
    assert send(client, app, z="America/Sao_Paulo").status_code == 204
    strangers = ["Mars/Olympus_Mons", "Europe/" + "x" * 100, 42, ["Asia/Tokyo"], "<script>"]
    for bad in strangers:  # each a browser of its own: still a page view, without a zone
        assert send(app.test_client(), app, z=bad).status_code == 204
    assert drain(app) == 1 + len(strangers)
    with app.app_context():
        zones = list(db.session.scalars(select(Visit.time_zone).order_by(Visit.started_at)))
    assert sorted(zones) == sorted(["America/Sao_Paulo"] + [""] * len(strangers))
    assert all("z" not in e.properties and "zone" not in e.properties for e in events(app))


def _zone_changes(app, contact_id: int) -> list[tuple[str, str]]:
    return [(e.properties["old"], e.properties["new"]) for e in events(app)
            if e.type == "field_changed" and e.contact_id == contact_id
            and e.properties["field"] == BROWSER_FIELD]


def _contact_statements(app, work) -> list[str]:
    """The SQL statements that touch the contacts table while `work()` runs."""
    seen: list[str] = []

    def listen(conn, cursor, statement, *args):
        if re.search(r"\b(FROM|INTO|UPDATE|JOIN)\s+contacts\b", statement, re.I):
            seen.append(statement)
    with app.app_context():
        engine = db.engine
    sa_event.listen(engine, "before_cursor_execute", listen)
    try:
        work()
    finally:
        sa_event.remove(engine, "before_cursor_execute", listen)
    return seen


@pytest.mark.both_backends
def test_a_known_contact_gets_their_browsers_zone_once_and_each_change(app, client):
    send(client, app, z="Europe/Berlin")
    drain(app)
    visitor_id = events(app)[0].visitor_id
    with app.app_context():  # the browser fills in a form: its zone comes along
        with write() as session:
            contact = Contact(email="ada@example.com", custom={"plan": "pro"}, consent_proof={},
                              first_touch={}, last_touch={})
            session.add(contact)
            session.flush()
            identity.identify(visitor_id, contact.id)
        contact_id = contact.id
        on_form_submitted(submission=None, contact=contact)
        contact = db.session.get(Contact, contact_id, populate_existing=True)
        assert contact.custom == {"plan": "pro", BROWSER_FIELD: "Europe/Berlin"}
        assert zone_of(contact).key == "Europe/Berlin"
        stamped = contact.updated_at
    assert _zone_changes(app, contact_id) == [("", "Europe/Berlin")]

    def same_zone_twice():
        send(client, app, url="http://localhost/pricing", z="Europe/Berlin")
        send(client, app, url="http://localhost/about", z="Mars/Olympus_Mons")  # dropped
        drain(app)
    assert _contact_statements(app, same_zone_twice) == []  # not even read
    with app.app_context():  # a new visit, in the same zone: read, never written
        with write():
            for visit in db.session.scalars(select(Visit)):
                visit.last_seen_at -= timedelta(hours=2)
    send(client, app, z="Europe/Berlin")
    drain(app)
    with app.app_context():
        assert len(db.session.scalars(select(Visit)).all()) == 2
        assert db.session.get(Contact, contact_id).updated_at == stamped
    assert _zone_changes(app, contact_id) == [("", "Europe/Berlin")]

    send(client, app, url="http://localhost/pricing", z="Asia/Tokyo")  # travelling
    drain(app)
    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        assert contact.custom[BROWSER_FIELD] == "Asia/Tokyo"
        assert zone_of(contact).key == "Asia/Tokyo"
        assert db.session.scalar(select(Visit.time_zone).order_by(
            Visit.started_at.desc()).limit(1)) == "Asia/Tokyo"
    assert _zone_changes(app, contact_id) == [("", "Europe/Berlin"),
                                              ("Europe/Berlin", "Asia/Tokyo")]
