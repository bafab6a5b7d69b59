"""The contact store: normalisation, custom fields, identity, merges and GDPR."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from engine import events
from engine.contacts import activity, gdpr, identity, merge, service, store
from engine.contacts.models import Contact, ContactMerge, Subscription, Visitor
from engine.db import db, write
from engine.events.models import Activity

pytestmark = pytest.mark.both_backends


def test_emails_are_normalised_and_deduplicated(app):
    with app.app_context():
        with write():
            first, created, _ = service.upsert("  Jane.Doe@EXAMPLE.com ", {"first_name": "Jane"})
        assert created and first.email == "jane.doe@example.com"
        with write():
            again, created, changes = service.upsert("jane.doe@example.COM", {"last_name": "Doe"})
        assert not created and again.id == first.id
        assert changes == {"last_name": ("", "Doe")}
        with write():
            idn, _, _ = service.upsert("anna@bücher.example", {})
        assert idn.email == "anna@xn--bcher-kva.example"
        assert db.session.scalar(select(func.count()).select_from(Contact)) == 2


@pytest.mark.parametrize("bad", ["", "no-at-sign", "a@b@c", "x" * 330 + "@example.com",
                                 "jane@example.com\r\nBcc: all@example.com"])
def test_invalid_emails_are_refused(app, bad):
    with app.app_context(), pytest.raises(service.ContactError):
        service.normalise_email(bad)


def test_custom_fields_are_typed_and_validated(app):
    with app.app_context():
        with write():
            service.define_field("seats", "Seats", "number")
            service.define_field("renewal", "Renewal date", "date")
            service.define_field("plan", "Plan", "choice", ["free", "pro"])
        with write():
            contact, _, _ = service.upsert("a@example.com",
                                           {"seats": "12", "renewal": "2027-01-31", "plan": "pro"})
        assert contact.custom == {"seats": 12, "renewal": "2027-01-31", "plan": "pro"}
        for values, field in [({"seats": "many"}, "seats"), ({"renewal": "31/01/2027"}, "renewal"),
                              ({"plan": "enterprise"}, "plan"), ({"seats": "NaN"}, "seats")]:
            with pytest.raises(service.ContactError) as raised, write():
                service.upsert("a@example.com", values)
            assert raised.value.field == field
        db.session.expire_all()
        assert db.session.get(Contact, contact.id).custom["plan"] == "pro"


def views(contact_id: int) -> list[Any]:
    """A contact's page views (their timeline also holds the changes made to them)."""
    return [a for a in activity.timeline(contact_id) if a.type == "page_view"]


def test_identify_gives_anonymous_activity_to_the_contact(app):
    vid = "a" * 32
    with app.app_context():
        with write():
            events.record("page_view", visitor_id=vid, url="/pricing")
            events.record_many([{"type": "page_view", "visitor_id": vid, "url": "/blog"},
                                  {"type": "page_view", "visitor_id": "b" * 32, "url": "/"}])
            contact, _, _ = service.upsert("visitor@example.com", {})
        with write():
            assert identity.identify(vid, contact.id) == 2
        urls = sorted(a.url for a in activity.timeline(contact.id) if a.type == "page_view")
        assert urls == ["/blog", "/pricing"]
        joined = [a for a in activity.timeline(contact.id) if a.type == "visitor_identified"]
        assert [a.properties for a in joined] == [{"events": 2}]
        assert identity.contact_for_visitor(vid).id == contact.id
        assert identity.contact_for_visitor("b" * 32) is None


def _person(email, **values):
    with write():
        contact, _, _ = service.upsert(email, values, source={"utm_source": email[:3]})
    return contact


def test_merge_is_recorded_and_undone(app):
    with app.app_context():
        winner = _person("win@example.com", first_name="Win")
        loser = _person("lose@example.com", first_name="Lose", phone="+44 20 1234 5678",
                        company="Acme", role="cto")
        with write():
            events.record("page_view", contact_id=loser.id, url="/pricing")
            identity.touch("c" * 32, loser.id)
            service.add_tags(db.session.get(Contact, loser.id), ["vip"])
            service.subscribe(db.session.get(Contact, loser.id), "newsletter")
        record = merge.merge(winner.id, loser.id, actor="owner@example.com")
        db.session.expire_all()
        won = db.session.get(Contact, winner.id)
        assert won.first_name == "Win" and won.phone == "+44 20 1234 5678"
        assert won.company.name == "Acme" and won.custom["role"] == "cto"
        assert [t.name for t in won.tags] == ["vip"]
        assert [a.url for a in views(winner.id)] == ["/pricing"]
        assert identity.contact_for_visitor("c" * 32).id == winner.id
        assert service.find_by_email("lose@example.com").id == winner.id
        stored = db.session.get(ContactMerge, record.id)
        assert stored.actor == "owner@example.com" and "phone" in stored.values_won

        merge.undo(record.id, actor="owner@example.com")
        db.session.expire_all()
        won, back = db.session.get(Contact, winner.id), db.session.get(Contact, loser.id)
        assert back.status == "active" and back.merged_into_id is None
        assert won.phone == "" and won.company_id is None and "role" not in won.custom
        assert won.tags == [] and [t.name for t in back.tags] == ["vip"]
        assert [a.url for a in views(loser.id)] == ["/pricing"]
        assert db.session.scalar(select(Subscription.contact_id)) == loser.id
        assert db.session.get(Visitor, "c" * 32).contact_id == loser.id
        with pytest.raises(merge.MergeError):
            merge.undo(record.id, actor="owner@example.com")
        with pytest.raises(merge.MergeError):
            merge.merge(winner.id, winner.id, actor="x")


def test_gdpr_export_and_erase_keep_aggregates(app):
    with app.app_context():
        person = _person("private@example.com", first_name="Pri", company="Acme")
        with write():
            contact = db.session.get(Contact, person.id)
            service.grant_consent(contact, form="ebook", ip="203.0.113.9", text="Yes please")
            events.record("page_view", contact_id=person.id, visitor_id="d" * 32,
                            url="/pricing", properties={"q": "private"})
            identity.touch("d" * 32, person.id)
        exported = gdpr.export_contact(person.id)
        assert exported["contact"]["email"] == "private@example.com"
        assert exported["contact"]["consent_proof"]["ip"] == "203.0.113.9"
        assert [a["url"] for a in exported["activity"] if a["type"] == "page_view"] == ["/pricing"]
        assert exported["browsers"][0]["id"] == "d" * 32

        gdpr.erase_contact(person.id, actor="owner")
        db.session.expire_all()
        erased = db.session.get(Contact, person.id)
        assert erased.status == "erased" and "private" not in erased.email
        assert erased.first_name == "" and erased.consent_proof == {}
        # kept: created, viewed, erased
        assert db.session.scalar(select(func.count()).select_from(Activity)
                                 .where(Activity.contact_id == person.id)) == 3
        assert db.session.scalar(select(func.count()).select_from(Visitor)) == 0
        text = str(gdpr.export_contact(person.id))
        assert "private@example.com" not in text and "203.0.113.9" not in text
        assert service.find_by_email("private@example.com") is None


def test_merges_are_undone_latest_first_and_never_after_erasure(app):
    with app.app_context():
        a, b, c = (_person(f"{n}@example.com", first_name=n.upper()) for n in "abc")
        with write():
            for person in (a, b, c):
                events.record("page_view", contact_id=person.id, url=f"/{person.id}")
        first = merge.merge(a.id, b.id, actor="x")   # b into a
        second = merge.merge(c.id, a.id, actor="x")  # then a into c
        with pytest.raises(merge.MergeError, match="undo that merge first"):
            merge.undo(first.id, actor="x")
        merge.undo(second.id, actor="x")
        merge.undo(first.id, actor="x")
        db.session.expire_all()
        owners = {p.id: [e.url for e in views(p.id)] for p in (a, b, c)}
        assert owners == {a.id: [f"/{a.id}"], b.id: [f"/{b.id}"], c.id: [f"/{c.id}"]}

        again = merge.merge(a.id, b.id, actor="x")
        erased = gdpr.erase_contact(b.id, actor="owner")  # b is part of a now: a is erased
        assert erased == a.id
        db.session.expire_all()
        assert {db.session.get(Contact, i).status for i in (a.id, b.id)} == {"erased"}
        record = db.session.get(ContactMerge, again.id)
        assert (record.winner_before, record.loser_before, record.values_won) == ({}, {}, {})
        with pytest.raises(merge.MergeError, match="erased"):
            merge.undo(again.id, actor="x")
        assert db.session.get(Contact, b.id).status == "erased"


def test_the_hot_path_follows_merges_and_reopens_only_what_is_not_subscribed(app):
    with app.app_context():
        winner = _person("keep@example.com", first_name="Keep")
        loser = _person("dupe@example.com", first_name="Dupe")
        merge.merge(winner.id, loser.id, actor="owner@example.com")
        with write():  # the merged address updates the contact it was merged into
            saved = store.save("dupe@example.com", {"job_title": "CTO", "first_name": ""},
                               source={"page": "/pricing"})
        assert (saved.id, saved.created, saved.changes) == (winner.id, False,
                                                            {"job_title": ("", "CTO")})
        db.session.expire_all()
        kept = db.session.get(Contact, winner.id)
        assert (kept.first_name, kept.job_title, kept.last_touch["landing_page"]) == (
            "Keep", "CTO", "/pricing")
        assert db.session.get(Contact, loser.id).job_title == ""

        with write():
            assert store.tag(winner.id, ["vip", " vip ", "", "beta"]) == 2
            assert store.tag(winner.id, ["vip"]) == 0
            opened = store.subscribe(winner.id, ["news", "offers"], double_opt_in=True)
        assert [status for _, status in opened] == ["pending", "pending"]
        news, offers = (db.session.get(Subscription, sub_id) for sub_id, _ in opened)
        with write():
            service.confirm_subscription(news.id)
            db.session.get(Subscription, offers.id).status = "unsubscribed"
        with write():  # asked again: the confirmed one stays, the unsubscribed one re-opens
            again = store.subscribe(winner.id, ["news", "offers"], double_opt_in=True)
        assert again == [(offers.id, "pending")]
        db.session.expire_all()
        assert db.session.get(Subscription, news.id).status == "subscribed"
        assert sorted(t.name for t in db.session.get(Contact, winner.id).tags) == ["beta", "vip"]


@pytest.mark.both_backends
def test_many_addresses_are_saved_at_once_as_one_by_one(app):
    """`save_addresses` gives what `save(address, {})` gives each: new contacts (consent
    unknown, created in the order given, once however often named), known ones touched, a
    merged address answered by the contact it went into."""
    with app.app_context():
        known = _person("known@example.com", first_name="Known")
        winner = _person("keep@example.com")
        loser = _person("dupe@example.com")
        merge.merge(winner.id, loser.id, actor="owner@example.com")
        with write():
            saved = store.save_addresses(
                ["new1@example.com", "known@example.com", "new2@example.com",
                 "new1@example.com", "dupe@example.com"],
                source={"source": "api"}, origin="api")
        assert [(a, s.created) for a, s in saved.items() if isinstance(s, store.Saved)] == [
            ("new1@example.com", True), ("known@example.com", False),
            ("new2@example.com", True), ("dupe@example.com", False)]
        assert saved["known@example.com"].id == known.id
        assert saved["dupe@example.com"].id == winner.id
        db.session.expire_all()
        new1 = db.session.get(Contact, saved["new1@example.com"].id)
        assert (new1.email, new1.consent, new1.first_touch["source"]) == (
            "new1@example.com", "unknown", "api")
        assert db.session.get(Contact, known.id).first_name == "Known"
        created = db.session.execute(
            select(Activity.contact_id, Activity.properties).where(
                Activity.type == "contact_created", Activity.contact_id.in_(
                    [saved["new1@example.com"].id, saved["new2@example.com"].id]))
            .order_by(Activity.id)).all()
        assert created == [(saved["new1@example.com"].id, {"source": "api"}),
                           (saved["new2@example.com"].id, {"source": "api"})]
