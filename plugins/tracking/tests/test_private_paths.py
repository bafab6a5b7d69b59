"""Addresses that carry a secret (confirmation, thank-you, asset and draft preview links) are
never sent by the script, stored, or shown in Traffic and on the dashboard."""
from __future__ import annotations

import json

import pytest
from alembic import command
from sqlalchemy import JSON, column, insert, select, table

from engine import migrate
from engine.contacts.models import Contact
from engine.db import UTCDateTime, db, locking, utcnow, write
from engine.events.models import Activity
from plugins.tracking.models import DailyPage, Visit
from plugins.tracking.tests.helpers import (
    CHROME,
    drain,
    events,
    page_token,
    public_page,
    send,
    signed_in,
)

OLD_TOUCHES = table("tracking_touches", column("contact_id"), column("first_touch", JSON),
                    column("last_touch", JSON), column("updated_at", UTCDateTime))
OLD_VISITS = table("tracking_visits", column("id"), column("visitor_id"),
                   column("started_at", UTCDateTime), column("last_seen_at", UTCDateTime),
                   *map(column, ("landing_url", "referrer", "source", "medium", "campaign",
                                 "device", "browser", "page_views", "events")))
SECRET = "Zm9vYmFy.c2VjcmV0LXRva2Vu"
PRIVATE = [f"/forms/confirm/{SECRET}", f"/forms/ebook/thanks/{SECRET}", f"/assets/{SECRET}",
           f"/admin/preview/{SECRET}"]


def everything_stored(app) -> str:
    """Every address-bearing column the plugin and the timeline keep, as one text."""
    with app.app_context():
        parts = [json.dumps([a.url, a.properties]) for a in db.session.scalars(select(Activity))]
        parts += [v.landing_url + " " + v.referrer for v in db.session.scalars(select(Visit))]
        parts += [json.dumps([c.first_touch, c.last_touch])
                  for c in db.session.scalars(select(Contact))]
        parts += list(db.session.scalars(select(DailyPage.path)))
    return "\n".join(parts)


@pytest.mark.both_backends
def test_addresses_with_a_secret_are_never_stored_or_shown(app, client):
    for path in PRIVATE:
        assert "t.js" not in public_page(app, path)  # no script on such a page
        assert "t.js" not in client.get(path).get_data(as_text=True)
        page = f"http://localhost{path}"
        send(client, app, url=page, n="Confirm")  # a script that sends it anyway
        client.get("/t/pixel.gif", query_string={"k": page_token(app, page)},
                   headers={"User-Agent": CHROME, "Referer": page})
        assert send(client, app, url="http://localhost/pricing", r=page).status_code == 204
        assert send(client, app, "download", url="http://localhost/pricing",
                    h=page).status_code == 204
    drain(app)
    stored = everything_stored(app)
    assert SECRET not in stored
    assert "http://localhost/forms/confirm/{token}" in stored  # what kind of page it was stays
    assert "http://localhost/assets/{token}" in stored
    with app.app_context():
        contact = Contact(email="ada@example.com", custom={}, consent_proof={}, first_touch={},
                          last_touch={})
        with write() as session:
            session.add(contact)
        from engine.contacts import identity
        from plugins.tracking import on_form_submitted
        with write():
            identity.identify(events(app)[0].visitor_id, contact.id)
        on_form_submitted(submission=None, contact=contact)
    assert SECRET not in everything_stored(app)
    viewer = signed_in(app, "viewer")
    for admin_page in ("/admin/traffic/", "/admin/"):
        html = viewer.get(admin_page).get_data(as_text=True)
        assert SECRET not in html and "/pricing" in html, admin_page


@pytest.mark.both_backends
def test_the_upgrade_cuts_secrets_out_of_what_was_stored_before(app):
    config = migrate.alembic_config(app, "tracking")
    with app.app_context(), locking(), db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "48eff3e423d6")  # before secrets were cut out
    confirm, asset = f"http://localhost{PRIVATE[0]}", f"http://localhost{PRIVATE[2]}?x=1"
    now = utcnow()
    with app.app_context(), write() as session:
        session.add_all([
            Activity(type="page_view", visitor_id="a" * 32, url=confirm, occurred_at=now,
                     properties={"referrer": asset, "title": "Confirm"}),
            Activity(type="download", visitor_id="a" * 32, url="http://localhost/", occurred_at=now,
                     properties={"href": asset}),
            Activity(type="asset_downloaded", visitor_id="a" * 32, url=PRIVATE[2],
                     occurred_at=now, properties={}),  # the core's own: not the plugin's to change
            Contact(id=1, email="ada@example.com", custom={}, consent_proof={},
                    first_touch={}, last_touch={}),
            DailyPage(day=now.date(), path=PRIVATE[0], views=2),
            DailyPage(day=now.date(), path="/forms/confirm/other", views=3),
            DailyPage(day=now.date(), path="/pricing", views=5),
        ])
        session.flush()
        session.execute(insert(OLD_TOUCHES), {  # a touch the plugin kept itself then
            "contact_id": 1, "first_touch": {"landing_page": confirm, "referrer": ""},
            "last_touch": {"landing_page": "http://localhost/", "referrer": asset},
            "updated_at": now})
        session.execute(insert(OLD_VISITS), {  # the columns visits had then
            "id": "v" * 32, "visitor_id": "a" * 32, "started_at": now, "last_seen_at": now,
            "landing_url": confirm, "referrer": asset, "source": "", "medium": "", "campaign": "",
            "device": "", "browser": "", "page_views": 1, "events": 1})
    migrate.upgrade(app, ["tracking"])
    with app.app_context():
        rows = {a.type: a for a in db.session.scalars(select(Activity))}
        assert rows["page_view"].url == "http://localhost/forms/confirm/{token}"
        assert rows["page_view"].properties == {"referrer": "http://localhost/assets/{token}",
                                                "title": "Confirm"}
        assert rows["download"].properties == {"href": "http://localhost/assets/{token}"}
        assert rows["asset_downloaded"].url == PRIVATE[2]
        visit = db.session.get(Visit, "v" * 32)
        assert (visit.landing_url, visit.referrer) == ("http://localhost/forms/confirm/{token}",
                                                       "http://localhost/assets/{token}")
        assert visit.time_zone == ""  # added by a later revision: unknown for earlier visits
        contact = db.session.get(Contact, 1)  # the plugin's touches moved to the contact
        assert contact.first_touch["landing_page"] == "http://localhost/forms/confirm/{token}"
        assert contact.last_touch["referrer"] == "http://localhost/assets/{token}"
        assert sorted((p.path, p.views) for p in db.session.scalars(select(DailyPage))) == [
            ("/forms/confirm/{token}", 5), ("/pricing", 5)]
