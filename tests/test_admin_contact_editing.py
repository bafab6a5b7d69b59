"""Admin → Contacts (add and edit by hand, notes), Custom fields and Companies: what is stored,
the events and audit entries each change leaves, and nothing at all for a form saved unchanged.
Few apps: each test walks through one person's visit."""
from __future__ import annotations

import io
import re

from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from engine.audit import AuditEntry
from engine.contacts import companies, service
from engine.contacts.models import Company, Contact, ContactNote, CustomField, Subscription
from engine.contacts.transfer import import_csv
from engine.db import db, write
from engine.events.models import Activity
from tests.admin_helpers import form_as_shown, signed_in, token_for


def _counts(app) -> tuple[int, int]:
    with app.app_context():
        return (db.session.scalar(select(func.count()).select_from(Activity)),
                db.session.scalar(select(func.count()).select_from(AuditEntry)))


def _events(app, contact_id: int) -> list[tuple[str, dict]]:
    with app.app_context():
        return [(a.type, a.properties) for a in db.session.scalars(
            select(Activity).where(Activity.contact_id == contact_id).order_by(Activity.id))]


def _fields(app) -> None:
    with app.app_context(), write():
        service.define_field("team_size", "Team size", "number")
        service.define_field("plan", "Plan", "choice", ["free", "pro"])
        service.define_field("topics", "Topics", "multi_choice", ["seo", "email", "ads"])
        service.define_field("vip", "VIP", "boolean")
        service.define_field("renewal", "Renewal", "date")


def _submit(client, path: str, changes: dict, remove: tuple = ()):  # the form as shown, changed
    page = client.get(path).get_data(as_text=True)
    shown = [(k, v) for k, v in form_as_shown(page, path) if k not in changes and k not in remove]
    for key, value in changes.items():
        shown += [(key, v) for v in (value if isinstance(value, list) else [value])]
    return client.post(path, data=MultiDict(shown))


def test_an_editor_adds_and_edits_a_contact_with_events_audit_and_no_invented_consent(app):
    _fields(app)
    editor = signed_in(app, "editor")
    response = _submit(editor, "/admin/contacts/new", {
        "email": " Ann@Example.COM ", "first_name": "Ann", "last_name": "Lee",
        "company": "Acme Ltd", "lifecycle_stage": "lead", "custom.team_size": "12",
        "custom.topics": ["seo", "ads"], "custom.vip": "yes", "custom.plan": "pro",
        "tags": "vip, trade-fair",
        "new_list": "newsletter", "owner_id": "1"})
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        ann = db.session.scalar(select(Contact).where(Contact.email == "ann@example.com"))
        assert (ann.first_name, ann.company.name, ann.lifecycle_stage, ann.owner_id) == \
            ("Ann", "Acme Ltd", "lead", 1)
        assert ann.custom == {"team_size": 12, "topics": ["seo", "ads"], "vip": True,
                              "plan": "pro"}
        assert ann.consent == "unknown" and ann.consent_at is None  # nobody said they agreed
        assert sorted(t.name for t in ann.tags) == ["trade-fair", "vip"]
        assert db.session.scalar(select(Subscription.status).where(
            Subscription.contact_id == ann.id)) == "subscribed"
        created = db.session.scalar(select(AuditEntry).where(AuditEntry.action ==
                                                             "contact.create"))
        assert created.details["new"]["email"] == "ann@example.com"
        contact_id = ann.id
    kinds = [t for t, _ in _events(app, contact_id)]
    assert kinds[0] == "contact_created" and kinds.count("tag_added") == 2 and \
        "list_joined" in kinds

    # The page as shown, saved unchanged: nothing stored, no event, no audit entry.
    before = _counts(app)
    response = _submit(editor, f"/admin/contacts/{contact_id}/edit", {})
    assert response.status_code == 302
    assert "Nothing changed" in editor.get(response.location).get_data(as_text=True)
    assert _counts(app) == before
    with app.app_context(), write():  # "pro" is no longer offered: a value kept stays
        service.define_field("plan", "Plan", "choice", ["free", "team"])
    assert _submit(editor, f"/admin/contacts/{contact_id}/edit", {}).status_code == 302
    assert _counts(app) == before

    # A real edit: stage, a cleared field, a tag removed, the list left, consent vouched for.
    response = _submit(editor, f"/admin/contacts/{contact_id}/edit", {
        "lifecycle_stage": "customer", "last_name": "", "tags": "vip",
        "list.newsletter": "unsubscribed", "consent_agreed": "yes",
        "consent_text": "Signed the paper form at the fair"})
    assert response.status_code == 302
    new = _events(app, contact_id)[len(kinds):]
    assert ("stage_changed", {"old": "lead", "new": "customer"}) in new
    assert ("field_changed", {"field": "last_name", "old": "Lee", "new": ""}) in new
    assert ("tag_removed", {"tag": "trade-fair"}) in new
    assert ("list_left", {"list": "newsletter", "status": "unsubscribed"}) in new
    with app.app_context():
        ann = db.session.get(Contact, contact_id)
        assert ann.consent == "granted"
        assert ann.consent_proof["by"] == "editor@example.com"
        assert ann.consent_proof["text"] == "Signed the paper form at the fair"
        entry = db.session.scalars(select(AuditEntry).where(
            AuditEntry.action == "contact.update")).one()
        assert entry.details["changes"]["lifecycle_stage"] == ["lead", "customer"]

    # Someone who unsubscribed is not put back by hand.
    response = editor.get(f"/admin/contacts/{contact_id}/edit").get_data(as_text=True)
    assert '<option value="subscribed"' not in response.split('name="list.newsletter"')[1] \
        .split("</select>")[0]


def test_bad_values_are_refused_by_type_and_duplicates_link_to_the_contact(app):
    _fields(app)
    with app.app_context(), write():
        service.upsert("bob@example.com", {"first_name": "Bob"})
    editor = signed_in(app, "editor")
    before = _counts(app)
    response = _submit(editor, "/admin/contacts/new", {"email": "BOB@example.com"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "bob@example.com is already a contact" in html
    assert "Open that contact" in html and "/admin/contacts/1" in html
    response = _submit(editor, "/admin/contacts/new", {
        "email": "new@example.com", "custom.team_size": "a dozen", "custom.plan": "gold",
        "custom.topics": ["seo", "tv"], "custom.vip": "perhaps", "custom.renewal": "31/12/26"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    for message in ("Team size must be a number", "Plan: choose one of the options",
                    "Topics: choose among the options", "VIP must be yes or no",
                    "Renewal must be a date"):
        assert message in html, message
    response = _submit(editor, "/admin/contacts/new", {"email": "n@example.com",
                                                       "new_list": "Not a slug!"})
    assert response.status_code == 400 and "lowercase letters" in response.get_data(as_text=True)
    assert _counts(app) == before
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Contact)) == 1
    viewer = signed_in(app, "viewer")
    assert viewer.get("/admin/contacts/new").status_code == 403
    assert viewer.post("/admin/contacts/1/edit", data={"csrf_token": token_for(viewer)}
                       ).status_code == 403
    # The import checks the same way, with the same words.
    with app.app_context():
        report = import_csv(io.StringIO("email,team_size,vip\nx@example.com,lots,maybe\n"))
        assert report.created == 0 and "Team size must be a number" in report.errors[0][1]


def test_owners_define_rename_reorder_retire_and_restore_fields(app):
    owner = signed_in(app, "owner")
    token = token_for(owner, "/admin/fields")
    for key, label, kind, choices in (("plan", "Plan", "choice", "free\npro\n"),
                                      ("size", "Size", "number", ""),
                                      ("tier", "Tier", "text", "")):
        response = owner.post("/admin/fields", data={
            "csrf_token": token, "entity": "contact", "key": key, "label": label,
            "type": kind, "choices": choices})
        assert response.status_code == 302
    assert owner.post("/admin/fields", data={"csrf_token": token, "entity": "contact",
                                             "key": "email", "label": "E", "type": "text"}
                      ).status_code == 400
    assert owner.post("/admin/fields", data={"csrf_token": token, "entity": "company",
                                             "key": "size", "label": "Headcount",
                                             "type": "number"}).status_code == 302
    owner.post("/admin/fields/contact/plan", data={"csrf_token": token, "label": "Price plan",
                                                   "choices": "free\npro\nenterprise"})
    owner.post("/admin/fields/contact/tier/move", data={"csrf_token": token,
                                                        "direction": "up"})
    owner.post("/admin/fields/contact/size/retire", data={"csrf_token": token,
                                                          "retired": "yes"})
    with app.app_context():
        rows = db.session.scalars(select(CustomField).where(CustomField.entity == "contact")
                                  .order_by(CustomField.position)).all()
        assert [(f.key, f.label) for f in rows] == [("plan", "Price plan"), ("tier", "Tier"),
                                                    ("size", "Size")]
        assert rows[0].choices == ["free", "pro", "enterprise"] and rows[2].retired
        assert list(service.active_fields()) == ["plan", "tier"]
        assert list(service.custom_fields("company")) == ["size"]
        actions = set(db.session.scalars(select(AuditEntry.action)))
        assert {"field.create", "field.update", "field.reorder", "field.retire"} <= actions
    form = owner.get("/admin/contacts/new").get_data(as_text=True)
    assert "Price plan" in form and 'name="custom.size"' not in form  # retired: hidden
    owner.post("/admin/fields/contact/size/retire", data={"csrf_token": token,
                                                          "retired": "no"})
    assert 'name="custom.size"' in owner.get("/admin/contacts/new").get_data(as_text=True)
    assert signed_in(app, "editor").get("/admin/fields").status_code == 403
    # No key typed: it is made from the label; contact pages show the label, not the key.
    assert owner.post("/admin/fields", data={"csrf_token": token, "entity": "contact",
                                             "key": "", "label": "Budget band (£)",
                                             "type": "text"}).status_code == 302
    with app.app_context(), write():
        robin, _, _ = service.upsert("robin@example.com", {"budget_band": "Over 5k"})
    shown = owner.get(f"/admin/contacts/{robin.id}").get_data(as_text=True)
    assert "<dt>Budget band (£)</dt><dd>Over 5k</dd>" in shown


def test_notes_are_on_the_timeline_and_only_their_author_or_an_owner_changes_them(app):
    with app.app_context(), write():
        contact, _, _ = service.upsert("cy@example.com", {})
    editor = signed_in(app, "editor")
    token = token_for(editor)
    editor.post(f"/admin/contacts/{contact.id}/notes",
                data={"csrf_token": token, "body": "Called, <b>wants</b> a demo"})
    page = editor.get(f"/admin/contacts/{contact.id}").get_data(as_text=True)
    assert "Called, &lt;b&gt;wants&lt;/b&gt; a demo" in page
    with app.app_context():
        note = db.session.scalars(select(ContactNote)).one()
    assert ("note_added", {"note_id": note.id, "by": "editor@example.com"}) in \
        _events(app, contact.id)
    other = signed_in(app, "editor", "other@example.com")
    assert other.post(f"/admin/contacts/notes/{note.id}/delete",
                      data={"csrf_token": token_for(other)}).status_code == 403
    editor.post(f"/admin/contacts/notes/{note.id}/edit",
                data={"csrf_token": token, "body": "Demo booked"})
    owner = signed_in(app, "owner")
    owner.post(f"/admin/contacts/notes/{note.id}/delete", data={"csrf_token": token_for(owner)})
    with app.app_context():
        assert db.session.scalars(select(ContactNote)).all() == []
        actions = [a for a in db.session.scalars(select(AuditEntry.action)
                                                 .order_by(AuditEntry.id))
                   if a.startswith("contact.note")]
        assert actions == ["contact.note.add", "contact.note.edit", "contact.note.delete"]
    # Erasure (GDPR) deletes the notes and the values the audit log kept of them.
    editor.post(f"/admin/contacts/{contact.id}/notes",
                data={"csrf_token": token, "body": "Zqsecret plans"})
    editor.post(f"/admin/contacts/{contact.id}/erase",
                data={"csrf_token": token, "confirm": "erase"})
    with app.app_context():
        assert db.session.scalars(select(ContactNote)).all() == []
        assert not [e for e in db.session.scalars(select(AuditEntry))
                    if "Zqsecret" in str(e.details) or "Demo booked" in str(e.details)]


def test_company_pages_and_matching_by_domain(app):
    with app.app_context(), write():
        dee, _, _ = service.upsert("dee@acme.com", {"first_name": "Dee", "company": "Acme"})
        service.upsert("eve@acme.com", {"first_name": "Eve"})
        service.upsert("fay@gmail.com", {"first_name": "Fay"})
    viewer = signed_in(app, "viewer")
    listing = viewer.get("/admin/companies?q=ac").get_data(as_text=True)
    assert "Acme" in listing and "<td>1</td>" in listing and "Add a company" not in listing
    editor = signed_in(app, "editor")
    with app.app_context():
        acme_id = db.session.scalar(select(Company.id).where(Company.name == "Acme"))
    response = _submit(editor, f"/admin/companies/{acme_id}/edit",
                       {"domain": "https://www.ACME.com/about"})
    assert response.status_code == 302
    gmail = _submit(editor, "/admin/companies/new", {"name": "Google", "domain": "gmail.com"})
    assert gmail.status_code == 302
    page = viewer.get(f"/admin/companies/{acme_id}").get_data(as_text=True)
    assert "acme.com" in page and f'href="/admin/contacts/{dee.id}"' in page
    assert viewer.get(f"/admin/companies/{acme_id}/edit").status_code == 403
    assert "contact created" in page  # the activity of its contacts
    assert re.search(r'<time datetime="[^"]+">\d\d \w{3} \d{4}, \d\d:\d\d [\w/]+</time>', page)

    # Off (the default): a new contact at acme.com is not linked.
    _submit(editor, "/admin/contacts/new", {"email": "gus@acme.com"})
    owner = signed_in(app, "owner")
    token = token_for(owner, "/admin/companies")
    owner.post("/admin/companies/matching", data={"csrf_token": token,
                                                  "match_by_domain": "on"})
    _submit(editor, "/admin/contacts/new", {"email": "hal@acme.com"})
    _submit(editor, "/admin/contacts/new", {"email": "ida@gmail.com"})
    with app.app_context():
        company_of = dict(db.session.execute(select(Contact.email, Company.name).outerjoin(
            Company, Company.id == Contact.company_id)).all())
        assert company_of["gus@acme.com"] is None and company_of["hal@acme.com"] == "Acme"
        assert company_of["ida@gmail.com"] is None  # free mail never matches
        assert companies.is_free_mail("yahoo.co.uk") and companies.is_free_mail("gmx.at")
        assert not companies.is_free_mail("live.acme.com")
    owner.post("/admin/companies/matching/apply", data={"csrf_token": token})
    with app.app_context():
        company_of = dict(db.session.execute(select(Contact.email, Company.name).outerjoin(
            Company, Company.id == Contact.company_id)).all())
        assert company_of["eve@acme.com"] == company_of["gus@acme.com"] == "Acme"
        assert company_of["fay@gmail.com"] is None and company_of["ida@gmail.com"] is None
    # Deleting a company keeps its contacts.
    editor.post(f"/admin/companies/{acme_id}/delete", data={"csrf_token": token_for(editor)})
    with app.app_context():
        assert db.session.get(Company, acme_id) is None
        assert db.session.scalar(select(func.count()).select_from(Contact).where(
            Contact.email.like("%@acme.com"), Contact.company_id.is_(None))) == 4


def test_segments_read_yes_no_and_several_choice_fields(app):
    from engine.segments.service import count_matching
    _fields(app)
    with app.app_context(), write():
        for email, values in (("a@example.com", {"vip": "yes", "topics": "seo;ads"}),
                              ("b@example.com", {"vip": "no", "topics": "email"}),
                              ("c@example.com", {})):
            service.upsert(email, values)

    def count(**condition):
        definition = {"match": "all", "groups": [{"match": "all", "conditions": [
            {"kind": "field", **condition}]}]}
        with app.app_context():
            return count_matching(definition)
    assert count(field="vip", op="equals", value="true") == 1
    assert count(field="vip", op="equals", value="false") == 1
    assert count(field="vip", op="is_empty") == 1
    assert count(field="topics", op="contains", value="ads") == 1
