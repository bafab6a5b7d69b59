"""A contact's time zone: what they said, else where their browser is, else their country's,
else the site's; and the browser's zone kept on the contact only when it changes."""
from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import select

from engine.contacts import service, store, timezones
from engine.contacts.models import Contact
from engine.content.models import SiteSetting
from engine.db import db, write
from engine.events.models import Activity


def test_the_zone_comes_from_the_field_then_the_browser_then_the_country_then_the_site(app):
    with app.app_context():
        with write() as session:
            session.add(SiteSetting(key="timezone", value="Europe/Lisbon"))

        def zone(country="FR", **custom):
            return timezones.zone_of(SimpleNamespace(custom=custom, country=country)).key
        assert zone(timezone="America/Chicago", browser_timezone="Asia/Tokyo") == \
            "America/Chicago"
        assert zone(timezone="Nowhere/Else", browser_timezone="Asia/Tokyo") == "Asia/Tokyo"
        assert zone(browser_timezone="Asia/Tokyo") == "Asia/Tokyo"
        assert zone(browser_timezone="Mars/Olympus_Mons") == "Europe/Paris"  # FR's
        assert zone() == "Europe/Paris"
        assert zone(country="") == "Europe/Lisbon"  # the site's
        assert zone(country="", browser_timezone="America/Sao_Paulo") == "America/Sao_Paulo"


def _saved(email: str, **values) -> int:
    with write():
        return store.save(email, service.clean_values(values)).id


def test_a_browsers_zone_is_written_only_when_it_changes(app):
    with app.app_context():
        ann = _saved("ann@example.com", plan="pro")
        bob = _saved("bob@example.com", browser_timezone="Asia/Tokyo")
        gone = _saved("gone@example.com")
        with write():
            db.session.get(Contact, gone).status = "erased"
        with write():
            changed = timezones.remember_browser_zones(
                {ann: "Europe/Berlin", bob: "Asia/Tokyo", gone: "Europe/Paris"})
        assert changed == [ann]
        with write():  # names the tz database does not know are ignored
            assert timezones.remember_browser_zones({ann: "Mars/Olympus_Mons", bob: ""}) == []
        custom = dict(db.session.execute(select(Contact.email, Contact.custom)).all())
        assert custom == {"ann@example.com": {"plan": "pro", "browser_timezone": "Europe/Berlin"},
                          "bob@example.com": {"browser_timezone": "Asia/Tokyo"},
                          "gone@example.com": {}}
        changes = db.session.scalars(select(Activity).where(
            Activity.type == "field_changed")).all()
        assert [(e.contact_id, e.properties["old"], e.properties["new"]) for e in changes
                if e.properties["field"] == "browser_timezone"] == [(ann, "", "Europe/Berlin")]


def test_a_country_gives_the_zone_where_most_of_its_people_live() -> None:
    from engine.contacts.timezones import zone_of_country
    assert {code: str(zone_of_country(code)) for code in ("DE", "BR", "US", "JP", "AU")} == {
        "DE": "Europe/Berlin", "BR": "America/Sao_Paulo", "US": "America/New_York",
        "JP": "Asia/Tokyo", "AU": "Australia/Sydney"}
    assert zone_of_country("XX") is None
