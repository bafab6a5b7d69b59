"""Plugins' sorts on the contact list: offered in the menu, paged by the plugin's own cursor over
the filtered contacts; one that raises is reported and the list shows the newest contacts."""
from __future__ import annotations

import re

import pytest

from engine.contacts import query
from engine.db import write
from tests.admin_helpers import signed_in

NAMES = '''
"""Sorts the contact list by last name (a keyset on last name and id)."""
from sqlalchemy import text, tuple_

from engine.contacts.models import Contact
from engine.contacts.query import ContactSort
from engine.db import db
from engine.plugins import hookimpl

DEFAULT_ENABLED = True


def by_last_name(statement, after, per_page):
    name, _, number = after.rpartition("|")
    if number.isdigit():
        statement = statement.where(tuple_(Contact.last_name, Contact.id) > (name, int(number)))
    rows = db.session.scalars(statement.order_by(Contact.last_name, Contact.id)
                              .limit(per_page + 1)).all()
    if len(rows) <= per_page:
        return rows, None
    return rows[:per_page], f"{rows[per_page - 1].last_name}|{rows[per_page - 1].id}"


def broken(statement, after, per_page):
    db.session.execute(text("SELECT no_such_column FROM contacts"))


@hookimpl
def register_contact_list_sorts():
    return [ContactSort("last_name", "Last name A–Z", by_last_name),
            ContactSort("newest", "Takes the core's name", broken),
            ContactSort("broken", "Broken order", broken)]
'''

PEOPLE = [("d@example.com", "Dahl", "lead"), ("a@example.com", "Abe", "customer"),
          ("c@example.com", "Chen", "lead"), ("b@example.com", "Berg", "lead"),
          ("e@example.com", "Eze", "customer")]


@pytest.fixture
def site(make_app, make_plugins):
    app = make_app(PLUGINS_PATH=str(make_plugins(names=NAMES)))
    from engine.contacts import service
    with app.app_context(), write():
        for email, last, stage in PEOPLE:
            service.upsert(email, {"last_name": last, "lifecycle_stage": stage})
    return app


def emails_in(html: str) -> list[str]:
    return re.findall(r"([a-e])@example\.com</span>", html) or re.findall(
        r"<strong>([a-e])@example\.com</strong>", html)


@pytest.mark.both_backends
def test_hook_register_contact_list_sorts(site):
    viewer = signed_in(site, "viewer")
    html = viewer.get("/admin/contacts").get_data(as_text=True)
    assert '<option value="last_name">Last name A–Z</option>' in html
    assert "Takes the core&#39;s name" not in html  # the core's sorts keep their names
    shown = viewer.get("/admin/contacts?sort=last_name").get_data(as_text=True)
    assert emails_in(shown) == ["a", "b", "c", "d", "e"]
    assert 'value="last_name" selected' in shown
    leads = viewer.get("/admin/contacts?sort=last_name&stage=lead").get_data(as_text=True)
    assert emails_in(leads) == ["b", "c", "d"]  # the filters still apply
    with site.test_request_context("/"):  # the same service, page by page, with its cursor
        asked = query.ContactQuery.from_args({"sort": "last_name"})
        assert asked.params() == {"sort": "last_name"}
        seen, after = [], ""
        while True:
            rows, after = query.page(query.filtered(asked), asked.sort, after, per_page=2)
            seen.append([c.email[0] for c in rows])
            if after is None:
                break
        assert seen == [["a", "b"], ["c", "d"], ["e"]]
        assert query.ContactQuery.from_args({"sort": "unknown"}).sort == "newest"


@pytest.mark.both_backends
def test_a_sort_that_raises_shows_the_newest_and_is_reported(site):
    viewer = signed_in(site, "viewer")
    response = viewer.get("/admin/contacts?sort=broken&after=whatever")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert emails_in(html) == ["e", "b", "c", "a", "d"]  # newest first, from the first page
    assert "That sort is not available just now" in html
    assert 'value="newest" selected' in html and 'value="broken" selected' not in html
    owner = signed_in(site, "owner")
    assert "no_such_column" in owner.get("/admin/plugins").get_data(as_text=True)
