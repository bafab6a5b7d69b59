"""The contact page as a person reads it: the timeline in plain words (filtered, paged, nothing
secret shown), where the contact came from (one notion of touch), search anywhere in name,
email and company, and possible duplicates merged from the page."""
from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import events
from engine.contacts import duplicates, query, service, store, touches
from engine.contacts import merge as merging
from engine.contacts.models import Company, Contact
from engine.contacts.transfer import import_csv
from engine.db import db, utcnow, write
from tests.admin_helpers import signed_in, token_for


def _contact(email: str, **values) -> int:
    with write():
        contact, _, _ = service.upsert(email, values)
        return contact.id


def _timeline_html(page: str) -> str:
    return page.split('id="timeline"', 1)[1].split('id="sources-title"', 1)[0]


def test_the_timeline_reads_as_sentences_filters_by_type_and_shows_no_secret(app):
    from engine.forms import security
    with app.app_context():
        secret = security.sign("asset", {"a": "playbook.pdf", "s": 1, "c": 1})
        contact_id = _contact("ada@example.com", first_name="Ada")
        start = utcnow() - timedelta(hours=3)
        with write():
            events.record_many([{"type": kind, "contact_id": contact_id, "properties": props,
                                 "url": url, "occurred_at": start + timedelta(minutes=i)}
                                for i, (kind, props, url) in enumerate([
                ("tag_added", {"tag": "vip"}, ""),
                ("list_joined", {"list": "newsletter", "status": "subscribed"}, ""),
                ("stage_changed", {"old": "lead", "new": "customer"}, ""),
                ("segment_entered", {"segment": "Hot leads", "segment_id": 4}, ""),
                ("email_opened", {"mailing": "Welcome", "mailing_id": 2, "machine": False}, ""),
                ("email_clicked", {"mailing": "Welcome", "mailing_id": 2,
                                   "url": f"https://example.org/offer?t={secret}"}, ""),
                ("form_submitted", {"form": "ebook", "submission_id": 9, "ip": "203.0.113.9",
                                    "token": secret}, f"http://localhost/thanks?t={secret}"),
                ("asset_downloaded", {"asset": "the-small-business-email-playbook.pdf",
                                      "submission_id": 9}, f"/assets/{secret}"),
                ("purchase", {"order_id": secret, "amount": 49, "currency": "EUR",
                              "product": "Pro plan"}, ""),
            ])])
    viewer = signed_in(app, "viewer")
    page = viewer.get(f"/admin/contacts/{contact_id}").get_data(as_text=True)
    timeline = _timeline_html(page)
    for words in ("Tag <strong>vip</strong> added", "Joined list <strong>newsletter</strong>",
                  "Stage changed from <strong>lead</strong> to <strong>customer</strong>",
                  "Entered segment <strong>Hot leads</strong>",
                  "Opened “<strong>Welcome</strong>” email",
                  "Clicked a link in “<strong>Welcome</strong>”",
                  'Submitted <a href="http://localhost/thanks" rel="noopener noreferrer">Ebook</a>'
                  " form",
                  "Downloaded <strong>The small business email playbook</strong>",
                  "Made a purchase"):
        assert words in timeline, words
    assert "3 hours ago" in timeline and 'title="' in timeline  # relative, exact on hover
    assert "<details><summary>Details</summary>" in timeline and "Pro plan" in timeline
    assert secret not in page and secret.split(".")[0] not in page
    assert "203.0.113.9" not in page and '{"' not in timeline and "submission_id" not in page

    only_tags = viewer.get(f"/admin/contacts/{contact_id}?type=tag_added&type=stage_changed")
    shown = re.findall(r'<li data-type="([a-z_]+)"', only_tags.get_data(as_text=True))
    assert shown == ["stage_changed", "tag_added"]
    assert 'value="tag_added" checked' in only_tags.get_data(as_text=True)
    partial = viewer.get(f"/admin/contacts/{contact_id}/timeline?type=tag_added",
                         headers={"HX-Request": "true"})
    assert re.findall(r'data-type="([a-z_]+)"', partial.get_data(as_text=True)) == ["tag_added"]
    assert partial.headers["HX-Push-Url"] == f"/admin/contacts/{contact_id}?type=tag_added"


def test_the_timeline_pages_older_events_by_keyset(app):
    from engine.contacts import timeline
    with app.app_context():
        contact_id = _contact("many@example.com")
        start = utcnow() - timedelta(days=1)
        with write():
            events.record_many([{"type": "tag_added", "contact_id": contact_id,
                                 "properties": {"tag": f"t{i}"},
                                 "occurred_at": start + timedelta(seconds=i)}
                                for i in range(250)])
        first = timeline.page(contact_id, types=["tag_added"])
        second = timeline.page(contact_id, types=["tag_added"], before=first.older)
        third = timeline.page(contact_id, types=["tag_added"], before=second.older)
        tags = [line.parts[1].text for p in (first, second, third)
                for group in p.groups for line in group.lines]
    assert tags == [f"t{i}" for i in reversed(range(250))] and third.older is None


@pytest.mark.parametrize("source, medium, campaign, referrer, channel", [
    ("(direct)", "(none)", "", "", "Direct"),
    ("google.co.uk", "organic", "", "https://www.google.co.uk/", "Organic search"),
    ("google", "cpc", "brand", "", "Paid search"),
    ("facebook", "paid_social", "spring", "", "Paid social"),
    ("t.co", "social", "", "https://t.co/x", "Organic social"),
    ("newsletter", "email", "spring", "", "Email"),
    ("partner.example", "referral", "", "https://partner.example/", "Referral"),
    ("ads", "display", "q4", "", "Display"),
    ("import", "", "", "", "Import"),
    ("friends", "word-of-mouth", "", "", "Unassigned"),
])
def test_channels_are_grouped_as_analytics_tools_do(source, medium, campaign, referrer,
                                                    channel):
    assert touches.channel_of(source, medium, campaign, referrer) == channel


def test_forms_imports_and_merges_keep_one_first_and_last_touch(app):
    with app.app_context():
        with write():
            store.save("jan@example.com", {}, source={
                "page": "https://site.test/offer?utm_source=newsletter&utm_medium=email"
                        "&utm_campaign=spring", "referrer": "https://mail.example/"})
            store.save("jan@example.com", {}, source={"page": "https://site.test/pricing"})
            store.save("jan@example.com", {}, source={"source": "api"})  # a shop's event
        jan = db.session.scalar(select(Contact).where(Contact.email == "jan@example.com"))
        jan_id = jan.id
        assert jan.first_touch["channel"] == jan.last_touch["channel"] == "Email"  # direct, API
        assert jan.first_touch["campaign"] == "spring"  # never hides a known source
        import_csv(io.StringIO("email,first_name\nold@example.com,Old\n"))
        old = db.session.scalar(select(Contact).where(Contact.email == "old@example.com"))
        assert (old.first_touch["source"], old.first_touch["channel"]) == ("import", "Import")
        old_id, imported = old.id, dict(old.first_touch)
        with write():
            db.session.get(Contact, old_id).first_touch = {
                **imported, "at": (utcnow() - timedelta(days=400)).isoformat()}
        merging.merge(jan_id, old_id, actor="owner@example.com")  # the earliest first touch
        db.session.expire_all()
        assert db.session.get(Contact, jan_id).first_touch["source"] == "import"
    viewer = signed_in(app, "viewer")
    page = viewer.get(f"/admin/contacts/{jan_id}").get_data(as_text=True)
    sources = page.split('id="sources-title"', 1)[1].split("</section>", 1)[0]
    assert "Original source" in sources and "<dd>Import</dd>" in sources
    assert "Latest source" in sources and "<dd>spring</dd>" in sources


def test_search_finds_a_piece_of_a_name_email_or_company_anywhere(app):
    with app.app_context():
        jan = _contact("jan.kowalski@acme-widgets.com", first_name="Jan", last_name="Kowalski",
                       company="Northwind Traders")
        ada = _contact("ada@analytical.org", first_name="Ada", last_name="Lovelace")
        zed = _contact("zed@example.com", first_name="Zed")

        def found(text: str) -> set[int]:
            asked = query.ContactQuery.from_args({"q": text})
            return {c.id for c in query.page(query.filtered(asked), "newest")[0]}

        assert found("owals") == {jan} and found("WIDGETS") == {jan}  # last name, email domain
        assert found("thwind") == {jan} and found("lytical") == {ada}  # company, email
        assert found("jan kow") == {jan} and found("nobody") == set()
        assert found("ad") == {ada} and found("z") == {zed}  # short: prefixes
        assert found("no") == {jan}  # …of a company name too
        with write():
            db.session.scalar(select(Company)).name = "Contoso"  # kept in step by triggers
            db.session.get(Contact, ada).email = "ada@engines.org"
        assert found("thwind") == set() and found("ontos") == {jan}
        assert found("engines") == {ada} and found("lytical") == set()


def test_possible_duplicates_are_suggested_and_merged_from_the_page(app):
    with app.app_context():
        jan = _contact("jan@gmail.com", first_name="Jan", last_name="Nowak", company="Acme")
        ids = {email: _contact(email, **values) for email, values in [
            ("jan+news@gmail.com", {}), ("jan@acme.com", {}), ("jan.kowalsky@acme.com", {}),
            ("jan.kowalski@acme.com", {}),
            ("j.nowak@elsewhere.org", {"first_name": "jan", "last_name": "NOWAK",
                                       "company": "Acme"}),
            ("info@acme.com", {}), ("someone@else.org", {})]}
        found = {s.contact.email: s.reason
                 for s in duplicates.suggestions(db.session.get(Contact, jan))}
    assert found == {"j.nowak@elsewhere.org": "Same name and company",
                     "jan+news@gmail.com": "The same Gmail mailbox",
                     "jan@acme.com": "Same address at another domain"}
    with app.app_context():  # the same mailbox, seen from the tagged address; a typo
        assert [s.contact.id for s in duplicates.suggestions(
            db.session.get(Contact, ids["jan+news@gmail.com"]))][:1] == [jan]
        assert [(s.contact.email, s.reason) for s in duplicates.suggestions(
            db.session.get(Contact, ids["jan.kowalski@acme.com"]))] == [
            ("jan.kowalsky@acme.com", "Address one character apart")]
    editor = signed_in(app, "editor")
    page = editor.get(f"/admin/contacts/{jan}").get_data(as_text=True)
    assert "Possible duplicates" in page and "data-confirm=\"Merge jan@acme.com" in page
    editor.post(f"/admin/contacts/{jan}/merge",
                data={"csrf_token": token_for(editor), "other": str(ids["jan@acme.com"])})
    with app.app_context():
        assert db.session.get(Contact, ids["jan@acme.com"]).merged_into_id == jan
    page = editor.get(f"/admin/contacts/{jan}").get_data(as_text=True)
    assert "jan@acme.com was merged into this contact" in page
    assert "data-confirm=\"Merge jan@acme.com" not in page
