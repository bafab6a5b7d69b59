"""`magnet contacts import FILE.csv --list SLUG`: people moving from another tool join a list as
subscribed, the import is their consent proof where they have none, nobody who unsubscribed is
put back, and a dry run says all of it while changing nothing."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.audit import AuditEntry
from engine.contacts import service, store
from engine.contacts.models import Contact, Subscription
from engine.db import db, write
from engine.events.models import Activity

pytestmark = pytest.mark.both_backends

CSV = """Email,First Name
new@example.com,Nina
granted@example.com,Gary
withdrawn@example.com,Wanda
left@example.com,Lefty
pending@example.com,Penny
already@example.com,Al
not-an-email,Nobody
"""


def known_people(app):
    """Contacts in every state an import meets, on the list `customers` or not."""
    with app.app_context(), write():
        for email in ("granted", "withdrawn", "left", "pending", "already"):
            contact, _, _ = service.upsert(f"{email}@example.com", {})
            if email == "granted":
                service.grant_consent(contact, form="form:newsletter", ip="192.0.2.1",
                                      text="Yes, send me news")
            if email == "withdrawn":
                contact.consent = "withdrawn"
            if email in ("left", "already"):
                service.subscribe(contact, "customers", source="form:shop")
            if email == "pending":
                service.subscribe(contact, "customers", source="form:shop", double_opt_in=True)
        store.unsubscribe(service.find_by_email("left@example.com").id, ["customers"])


def state(app):
    """Everything an import may change: contacts, subscriptions and events."""
    with app.app_context():
        contacts = {c.email: (c.first_name, c.consent, c.consent_proof)
                    for c in db.session.scalars(select(Contact))}
        subs = {(s.contact_id, s.list_slug): (s.status, s.source, s.confirmed_at)
                for s in db.session.scalars(select(Subscription))}
        return contacts, subs, db.session.scalar(select(func.max(Activity.id))) or 0


def test_import_to_a_list_subscribes_records_consent_and_skips_who_said_no(app, tmp_path):
    known_people(app)
    path = tmp_path / "mailchimp-export.csv"
    path.write_text(CSV)
    runner = app.test_cli_runner()
    before = state(app)

    dry = runner.invoke(args=["contacts", "import", str(path), "--list", "customers",
                              "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "7 rows: 1 would be created" in dry.output
    assert ("list customers: 3 would join, 1 already subscribed, 2 skipped (they had "
            "unsubscribed or withdrawn consent)") in dry.output
    assert "skipped left@example.com on customers" in dry.output
    assert state(app) == before  # nothing written, not even an event
    events_before = before[2]

    done = runner.invoke(args=["contacts", "import", str(path), "--list", "customers"])
    assert done.exit_code == 0, done.output
    assert "list customers: 3 joined, 1 already subscribed, 2 skipped" in done.output
    assert "skipped withdrawn@example.com on customers" in done.output
    with app.app_context():
        subs = {c.email: s for s, c in db.session.execute(
            select(Subscription, Contact).join(Contact)
            .where(Subscription.list_slug == "customers"))}
        assert {e: s.status for e, s in subs.items()} == {
            "new@example.com": "subscribed", "granted@example.com": "subscribed",
            "left@example.com": "unsubscribed", "pending@example.com": "subscribed",
            "already@example.com": "subscribed"}  # withdrawn@ was left off
        for email in ("new", "granted", "pending"):
            assert subs[f"{email}@example.com"].source == "import:mailchimp-export.csv"
            assert subs[f"{email}@example.com"].confirmed_at is not None
        assert subs["already@example.com"].source == "form:shop"  # as it was
        people = {c.email: c for c in db.session.scalars(select(Contact))}
        for email in ("new", "pending", "already"):
            proof = people[f"{email}@example.com"].consent_proof
            assert people[f"{email}@example.com"].consent == "granted"
            assert proof["form"] == "import:mailchimp-export.csv"
            assert proof["text"].startswith("Imported from mailchimp-export.csv on ")
            assert "by the command line" in proof["text"]
        assert people["granted@example.com"].consent_proof["form"] == "form:newsletter"
        assert people["withdrawn@example.com"].consent == "withdrawn"
        assert (people["left@example.com"].consent, people["left@example.com"].consent_proof) \
            == ("unknown", {})  # refused everywhere: the import is no proof for them
        joined = sorted(db.session.scalars(select(Contact.email).join(
            Activity, Activity.contact_id == Contact.id).where(
            Activity.id > events_before, Activity.type == "list_joined",
            Activity.properties["list"].as_string() == "customers",
            Activity.properties["status"].as_string() == "subscribed")))
        assert joined == ["granted@example.com", "new@example.com", "pending@example.com"]
        assert [e.details["joined"] for e in db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "list.import"))] == [3]

    again = runner.invoke(args=["contacts", "import", str(path), "--list", "customers"])
    assert "list customers: 0 joined, 4 already subscribed, 2 skipped" in again.output


def test_a_bad_list_name_is_refused_before_anything_is_read(app, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(CSV)
    result = app.test_cli_runner().invoke(args=["contacts", "import", str(path),
                                                "--list", "Customers!"])
    assert result.exit_code == 2 and "lowercase letters, digits and hyphens" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Contact)) == 0
