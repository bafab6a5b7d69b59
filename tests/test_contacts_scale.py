"""What keeps contacts usable at a million rows: name search served by indexes, the
indexes themselves, and the activity timeline paged with a cursor."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import inspect, select, text

from tests.admin_helpers import signed_in

PEOPLE = [("jane@example.com", "Jane", "Doe"), ("janet@example.com", "Janet", "Smith"),
          ("bob@example.com", "Bob", "Janeway"), ("ann@example.com", "Ann", "Jones"),
          ("under@example.com", "a_b", "Lee"), ("axb@example.com", "axb", "Lee")]


def _add_people(app):
    from engine.contacts import service
    from engine.db import write
    with app.app_context(), write():
        for email, first, last in PEOPLE:
            service.upsert(email, {"first_name": first, "last_name": last})


def _found(client, q):
    html = client.get("/admin/contacts", query_string={"q": q}).get_data(as_text=True)
    return {email for email, _, _ in PEOPLE if email in html}


@pytest.mark.both_backends
def test_name_search_matches_prefixes_of_names_and_emails(app):
    _add_people(app)
    viewer = signed_in(app, "viewer")
    assert _found(viewer, "jan") == {"jane@example.com", "janet@example.com", "bob@example.com"}
    assert _found(viewer, "JANE D") == {"jane@example.com"}  # "first last", any case
    assert _found(viewer, "jones") == {"ann@example.com"}
    assert _found(viewer, "ane") == {"jane@example.com", "janet@example.com",
                                     "bob@example.com"}  # anywhere (trigram search)
    assert _found(viewer, "an") == {"ann@example.com"}  # too short for a trigram: prefixes
    assert _found(viewer, "janet@") == {"janet@example.com"}
    assert _found(viewer, "a_") == {"under@example.com"}  # LIKE wildcards are literal
    assert _found(viewer, "a_b") == {"under@example.com"}


@pytest.mark.both_backends
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_name_search_is_served_by_the_lower_name_indexes(app):
    from engine.contacts.models import Contact
    from engine.contacts.query import name_or_email_search
    from engine.db import db
    with app.app_context():
        columns = {ix["name"]: ix["column_names"] for ix in inspect(db.engine).get_indexes(
            "contacts") if ix["name"] in ("ix_contacts_created_at", "ix_contacts_stage_id")}
        assert columns == {"ix_contacts_created_at": ["created_at", "status"],
                           "ix_contacts_stage_id": ["lifecycle_stage", "id"]}
        query = select(Contact.id).where(name_or_email_search("jan"))
        sql = str(query.compile(db.engine, compile_kwargs={"literal_binds": True}))
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text("SET LOCAL enable_seqscan = off"))
            plan = "\n".join(db.session.scalars(text(f"EXPLAIN {sql}")))
        else:
            plan = "\n".join(row[-1] for row in db.session.execute(
                text(f"EXPLAIN QUERY PLAN {sql}")))
        db.session.rollback()
        assert "ix_contacts_first_name_lower" in plan and "ix_contacts_last_name_lower" in plan


@pytest.mark.both_backends
def test_the_timeline_pages_with_a_cursor_down_to_its_first_event(app):
    from engine import events
    from engine.contacts import activity, service
    from engine.db import utcnow, write
    start = utcnow() - timedelta(days=30)
    with app.app_context(), write():
        contact, _, _ = service.upsert("busy@example.com", {"first_name": "Busy"})
        contact_id = contact.id
        # 230 events, pairs sharing a timestamp, so the cursor must break ties by id
        events.record_many([{"type": "page_view", "contact_id": contact_id,
                               "url": f"/page-{i:03d}",
                               "occurred_at": start + timedelta(minutes=i // 2)}
                              for i in range(230)])
    with app.app_context():
        seen, before = [], None
        while True:
            page = activity.timeline(contact_id, limit=100, before=before)
            if not page:
                break
            seen += [event.url for event in page]
            before = page[-1].id
        assert seen == ["", *(f"/page-{i:03d}" for i in reversed(range(230)))]  # the newest:
        # contact_created, recorded now

    viewer = signed_in(app, "viewer")
    first = viewer.get(f"/admin/contacts/{contact_id}").get_data(as_text=True)
    assert "/page-229" in first and "/page-131" in first and "/page-130" not in first

    older = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    second = viewer.get(older).get_data(as_text=True)
    assert "/page-130" in second and "/page-031" in second and "/page-131" not in second
    assert "Newest activity" in second
    last = viewer.get(second.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&"))
    html = last.get_data(as_text=True)
    assert "/page-000" in html and "/page-029" in html and "Older activity" not in html
