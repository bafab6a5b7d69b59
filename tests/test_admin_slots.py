"""The admin's slots for plugins: a panel on the contact page, filters and columns on the contact
list; a plugin that raises in one leaves the page whole and its error shown to the owner."""
from __future__ import annotations

import pytest

from engine.contacts import query
from engine.db import write
from tests.admin_helpers import signed_in

PLANS = '''
"""Plans: which plan each contact is on (a custom field), on the contact list and page."""
from sqlalchemy import select

from engine.admin import ContactColumn
from engine.contacts.models import Contact
from engine.contacts.query import ContactFilter
from engine.plugins import hookimpl

DEFAULT_ENABLED = True
PLAN = Contact.__table__.c.custom["plan"].as_string()


def _on_plan(query, value):
    return query.where(PLAN == value)


@hookimpl
def register_contact_list_filters():
    return [ContactFilter("plan", "Plan", lambda: [("pro", "Pro"), ("free", "Free")], _on_plan),
            ContactFilter("q", "Takes the search's name", lambda: [], _on_plan)]


@hookimpl
def register_contact_list_columns():
    return [ContactColumn("Plan", lambda contacts: {
        c.id: (c.custom or {}).get("plan", "").upper() for c in contacts})]


@hookimpl
def tpl_admin_contact(contact):
    plan = contact.custom.get("plan")
    return f'<section class="card plan-panel"><h2>Plan</h2><p>{contact.email}: {plan}</p></section>'
'''

BROKEN = '''
"""Breaks in every admin slot."""
from engine.admin import ContactColumn
from engine.contacts.query import ContactFilter
from engine.plugins import hookimpl

DEFAULT_ENABLED = True


def fail(*args):
    raise RuntimeError("the slot broke")


@hookimpl
def register_contact_list_filters():
    return [ContactFilter("broken", "Broken", lambda: [("x", "X")], fail),
            ContactFilter("nochoices", "No choices", fail, fail)]


@hookimpl
def register_contact_list_columns():
    return [ContactColumn("Broken column", fail)]


@hookimpl
def tpl_admin_contact(contact):
    fail()
'''


@pytest.fixture
def site(make_app, make_plugins):
    app = make_app(PLUGINS_PATH=str(make_plugins(plans=PLANS, broken=BROKEN)))
    from engine.contacts import service
    with app.app_context(), write():
        service.define_field("plan", "Plan", "text")
        for email, plan in [("pro@example.com", "pro"), ("free@example.com", "free")]:
            service.upsert(email, {"plan": plan})
    return app


def _ids(app):
    from engine.contacts.service import find_by_email
    with app.app_context():
        return {c: find_by_email(c).id for c in ("pro@example.com", "free@example.com")}


@pytest.mark.both_backends
def test_hook_register_contact_list_filters(site):
    viewer = signed_in(site, "viewer")
    page = viewer.get("/admin/contacts").get_data(as_text=True)
    assert '<select name="plan">' in page and '<option value="pro">Pro</option>' in page
    assert '<select name="q">' not in page  # the core's own parameters stay the core's
    pro = viewer.get("/admin/contacts?plan=pro").get_data(as_text=True)
    assert "pro@example.com" in pro and "free@example.com" not in pro
    assert 'value="pro" selected' in pro
    unknown = viewer.get("/admin/contacts?plan=gold").get_data(as_text=True)  # not a choice
    assert "pro@example.com" in unknown and "free@example.com" in unknown
    with site.test_request_context("/?plan=pro&sort=email"):  # the same service, outside the admin
        asked = query.ContactQuery.from_args({"plan": "pro", "sort": "email"})
        assert asked.params() == {"plan": "pro", "sort": "email"}
        rows, _ = query.page(query.filtered(asked), asked.sort)
        assert [c.email for c in rows] == ["pro@example.com"]


def test_a_filter_that_raises_matches_nobody_and_is_reported(site):
    viewer = signed_in(site, "viewer")
    page = viewer.get("/admin/contacts?broken=x")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "No contacts match." in html and '<select name="nochoices">' not in html
    owner = signed_in(site, "owner")
    assert "the slot broke" in owner.get("/admin/plugins").get_data(as_text=True)


def test_hook_register_contact_list_columns(site):
    viewer = signed_in(site, "viewer")
    page = viewer.get("/admin/contacts?sort=email")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<th>Plan</th>" in html and "<td>PRO</td>" in html and "<td>FREE</td>" in html
    assert "<th>Broken column</th>" in html  # its cells are empty; the list is whole


def test_hook_tpl_admin_contact(site):
    viewer = signed_in(site, "viewer")
    page = viewer.get(f"/admin/contacts/{_ids(site)['pro@example.com']}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<section class="card plan-panel"><h2>Plan</h2><p>pro@example.com: pro</p>' in html
    assert "Profile" in html  # the broken panel is left out, the page is whole
