"""The admin's Forms and Contacts areas: builder, submissions, CSV, contact list with keyset
pages, the 360° contact page (hostile input shown as text), merge with undo, GDPR export/erase."""
from __future__ import annotations

import csv
import io
import json
import re

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from tests.admin_helpers import form_as_shown, signed_in, token_for
from tests.content_helpers import load_demo
from tests.forms_support import EBOOK, forms_site, post

PAYLOAD = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def site(make_app):
    return forms_site(make_app)


def _contact_id(app, email):
    from engine.contacts.models import Contact
    from engine.db import db
    with app.app_context():
        return db.session.scalar(select(Contact.id).where(Contact.email == email))


@pytest.mark.parametrize("role,allowed", [("viewer", False), ("editor", True), ("owner", True)])
def test_forms_and_contacts_by_role(site, role, allowed):
    post(site.test_client(), "ebook", EBOOK)
    contact_id = _contact_id(site, "jane@example.com")
    client = signed_in(site, role)
    for path in ("/admin/forms", "/admin/contacts", f"/admin/contacts/{contact_id}",
                 "/admin/forms/ebook/submissions"):
        assert client.get(path).status_code == 200, path
    token = token_for(client)
    checks = [client.get("/admin/forms/new"), client.get("/admin/forms/ebook"),
              client.post("/admin/forms/ebook/submissions.csv", data={"csrf_token": token}),
              client.post("/admin/forms/ebook", data={"csrf_token": token}),
              client.post(f"/admin/contacts/{contact_id}/merge",
                          data={"csrf_token": token, "other": "x"}),
              client.post(f"/admin/contacts/{contact_id}/export", data={"csrf_token": token}),
              client.post(f"/admin/contacts/{contact_id}/erase", data={"csrf_token": token}),
              client.post("/admin/contacts/merges/1/undo", data={"csrf_token": token})]
    for response in checks:
        response.close()
        assert (response.status_code != 403) == allowed, response.request.path
    page = client.get(f"/admin/contacts/{contact_id}").get_data(as_text=True)
    assert (("Merge into this contact" in page) == allowed
            and ("Erase personal data" in page) == allowed)


@pytest.mark.both_backends
def test_hostile_input_from_a_public_form_shows_as_text(site):
    response = post(site.test_client(), "ebook", {**EBOOK, "first_name": PAYLOAD,
                                                  "email": "mal@example.com"})
    assert response.status_code == 303
    contact_id = _contact_id(site, "mal@example.com")
    viewer = signed_in(site, "viewer")
    for path in (f"/admin/contacts/{contact_id}", "/admin/contacts",
                 "/admin/forms/ebook/submissions"):
        html = viewer.get(path).get_data(as_text=True)
        assert "&lt;script&gt;alert(" in html, path
        assert "<script>alert" not in html and "<img src=x" not in html, path


def test_form_builder_creates_and_edits_a_form_with_validation(site):
    editor = signed_in(site, "editor")
    token = token_for(editor, "/admin/forms/new")
    data = {"csrf_token": token, "slug": "demo-call",
            "title": "Book a demo", "submit_label": "Book",
            "field_count": "1", "f-0-name": "email", "f-0-type": "email", "f-0-label": "Email",
            "f-0-required": "1", "f-0-order": "0",
            "f-1-name": "team_size", "f-1-type": "select", "f-1-label": "Team size",
            "f-1-choices": "small | 1-10\nlarge | 11+", "f-1-profiling": "1", "f-1-order": "1",
            "success_action": "redirect", "success_redirect": "https://evil.example/",
            "notify": "sales@example.com", "tags": "demo"}
    refused = editor.post("/admin/forms/new", data=data)
    assert (refused.status_code == 400
            and "redirect must be a path" in refused.get_data(as_text=True))
    assert 'value="Book a demo"' in refused.get_data(as_text=True)  # what was typed stays
    data["success_redirect"] = "/thanks"
    assert editor.post("/admin/forms/new", data=data).status_code == 302
    from engine.forms import service
    with site.app_context():
        form = service.get("demo-call")
    assert [f.name for f in form.fields] == ["email", "team_size"]
    assert (form.fields[1].profiling
            and [c.value for c in form.fields[1].choices] == ["small", "large"])
    assert form.success.redirect == "/thanks" and form.notify == ("sales@example.com",)
    public = site.test_client().get("/forms/demo-call").get_data(as_text=True)
    assert "Book" in public and 'name="email"' in public


def _stored(app, slug):
    from engine.db import db
    from engine.forms.models import Form
    with app.app_context():
        row = db.session.scalar(select(Form).where(Form.slug == slug))
        return json.loads(json.dumps(row.definition)), row.source, row.updated_at


def _public(app, slug):
    """The public form's HTML (the <form> element), without the token signed for this render."""
    html = app.test_client().get(f"/forms/{slug}").get_data(as_text=True)
    form = html[html.index('<form class="magnet-form"'):]
    return re.sub(r'name="_token" value="[^"]*"', 'name="_token"', form[:form.index("</form>")])


def _demo_slugs(app):
    from engine.forms import service
    with app.app_context():
        return [row.slug for row in service.all_forms()]


def test_every_demo_form_saved_unchanged_in_the_editor_stays_as_it_was(site):
    """Pressing “Save form” without editing: the stored definition (from content/forms/), the
    public form and its `source` stay as they were, and the page says nothing changed."""
    load_demo(site)
    editor = signed_in(site, "editor")
    slugs = _demo_slugs(site)
    assert {"ebook", "newsletter", "webinar"} <= set(slugs)
    for slug in slugs:
        before, public = _stored(site, slug), _public(site, slug)
        page = editor.get(f"/admin/forms/{slug}").get_data(as_text=True)
        response = editor.post(f"/admin/forms/{slug}", data=MultiDict(form_as_shown(page)),
                               follow_redirects=True)
        assert response.status_code == 200, slug
        assert "unchanged" in response.get_data(as_text=True), slug
        assert _stored(site, slug) == before, slug
        assert _public(site, slug) == public, slug


def test_every_demo_form_keeps_what_the_editor_did_not_touch(site):
    """One edit (the title) is the only change: every other property of every field, shown in
    the editor or not, is read back as stored, and the public form differs only in its title."""
    from dataclasses import replace

    from engine.forms import service
    load_demo(site)
    editor = signed_in(site, "editor")
    for slug in _demo_slugs(site):
        with site.app_context():
            before = service.get(slug)
        public = _public(site, slug)
        page = editor.get(f"/admin/forms/{slug}").get_data(as_text=True)
        shown = [(k, v + " (new)" if k == "title" else v) for k, v in form_as_shown(page)]
        response = editor.post(f"/admin/forms/{slug}", data=MultiDict(shown),
                               follow_redirects=True)
        assert "saved" in response.get_data(as_text=True), slug
        with site.app_context():
            after = service.get(slug)
        assert after == replace(before, title=before.title + " (new)"), slug
        assert _public(site, slug).replace(" (new)", "") == public, slug
        # Choices written as one string are shown (and kept) as one string.
        again = editor.get(f"/admin/forms/{slug}").get_data(as_text=True)
        for spec in after.fields:
            for choice in spec.choices:
                if choice.value == choice.label:
                    assert f"{choice.value} | " not in again, (slug, choice)


def test_properties_without_an_input_in_the_editor_are_kept(site):
    from engine.forms import service
    with site.app_context():
        service.save({"slug": "call", "title": "Call me", "owner": "sales", "fields": [
            {"name": "email", "type": "email"},
            {"name": "nickname", "type": "text", "autocomplete": "nickname", "note": "x"}]})
    editor = signed_in(site, "editor")
    page = editor.get("/admin/forms/call").get_data(as_text=True)
    shown = [(k, "Call me back" if k == "title" else v) for k, v in form_as_shown(page)]
    assert editor.post("/admin/forms/call", data=MultiDict(shown)).status_code == 302
    stored, source, _ = _stored(site, "call")
    assert (stored["title"], stored["owner"], source) == ("Call me back", "sales", "admin")
    nickname = stored["fields"][1]
    assert (nickname["autocomplete"], nickname["note"]) == ("nickname", "x")


def test_the_editor_sets_defaults_and_number_bounds_that_the_public_form_enforces(site):
    editor = signed_in(site, "editor")
    page = editor.get("/admin/forms/webinar").get_data(as_text=True)
    shown = dict(form_as_shown(page))
    index = {v: k.split("-")[1] for k, v in shown.items() if k.endswith("-name")}
    team, webinar = index["team_size"], index["webinar_id"]
    assert (shown[f"f-{team}-min"], shown[f"f-{team}-max"]) == ("0", "100000")
    assert shown[f"f-{webinar}-default"] == "lead-scoring-2026-12-10"
    edited = [(k, {f"f-{team}-min": "1", f"f-{team}-max": "250.5",
                   f"f-{webinar}-default": "scoring-2027-01-14"}.get(k, v))
              for k, v in form_as_shown(page)]
    response = editor.post("/admin/forms/webinar", data=MultiDict(edited), follow_redirects=True)
    assert "saved" in response.get_data(as_text=True)
    stored, _, _ = _stored(site, "webinar")
    fields = {f["name"]: f for f in stored["fields"]}
    assert (fields["team_size"]["min"], fields["team_size"]["max"]) == (1, 250.5)
    assert fields["webinar_id"]["default"] == "scoring-2027-01-14"
    public = _public(site, "webinar")
    assert 'value="scoring-2027-01-14"' in public
    assert 'min="1"' in public and 'max="250.5"' in public
    visitor = site.test_client()
    base = {"email": "ann@example.com", "first_name": "Ann", "webinar_id": "scoring-2027-01-14"}
    for number, accepted in (("0", False), ("251", False), ("-5", False), ("250.5", True)):
        response = post(visitor, "webinar", {**base, "team_size": number})
        assert (response.status_code == 303) == accepted, number
    bad = [(k, "many" if k == f"f-{team}-min" else v) for k, v in form_as_shown(page)]
    refused = editor.post("/admin/forms/webinar", data=MultiDict(bad))
    assert refused.status_code == 400 and 'value="many"' in refused.get_data(as_text=True)
    upside_down = [(k, {f"f-{team}-min": "10", f"f-{team}-max": "5"}.get(k, v))
                   for k, v in form_as_shown(page)]
    assert editor.post("/admin/forms/webinar", data=MultiDict(upside_down)).status_code == 400


def test_submissions_export_as_csv_without_formula_injection(site):
    post(site.test_client(), "ebook", {**EBOOK, "first_name": "=HYPERLINK(\"http://x\")"})
    editor = signed_in(site, "editor")
    assert editor.get("/admin/forms/ebook/submissions.csv").status_code == 405
    response = editor.post("/admin/forms/ebook/submissions.csv",
                           data={"csrf_token": token_for(editor)})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.get_data().startswith(b"\xef\xbb\xbfid,")  # a byte-order mark, for Excel
    rows = list(csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert len(rows) == 1 and rows[0]["email"] == "Jane@Example.com"
    assert rows[0]["first_name"].startswith("'=")


def test_the_submissions_export_round_trips_pound_signs_and_umlauts(site):
    post(site.test_client(), "ebook", {**EBOOK, "first_name": "Jürgen", "company": "£ Ünd Co"})
    editor = signed_in(site, "editor")
    raw = editor.post("/admin/forms/ebook/submissions.csv",
                      data={"csrf_token": token_for(editor)}).get_data()
    assert raw[:3] == b"\xef\xbb\xbf"
    [row] = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert (row["first_name"], row["company"]) == ("Jürgen", "£ Ünd Co")


@pytest.mark.both_backends
def test_contact_list_pages_with_a_cursor_and_filters(site):
    from engine.contacts import service
    from engine.db import write
    with site.app_context(), write():
        for i in range(120):
            contact, _, _ = service.upsert(f"p{i:03d}@example.com", {"first_name": f"P{i}",
                                     "lifecycle_stage": "lead" if i % 2 else "subscriber"})
            if i % 10 == 0:
                service.add_tags(contact, ["vip"])
    viewer = signed_in(site, "viewer")
    first = viewer.get("/admin/contacts").get_data(as_text=True)
    assert "p119@example.com" in first and "p069@example.com" not in first
    next_link = (first.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
                 .replace("&amp;", "&"))
    second = viewer.get(next_link).get_data(as_text=True)
    assert "p069@example.com" in second and "p119@example.com" not in second
    by_email = viewer.get("/admin/contacts?sort=email").get_data(as_text=True)
    assert by_email.index("p000@example.com") < by_email.index("p001@example.com")
    leads = viewer.get("/admin/contacts?stage=lead&sort=email").get_data(as_text=True)
    assert "p001@example.com" in leads and "p000@example.com" not in leads
    vip = viewer.get("/admin/contacts?tag=vip&sort=email").get_data(as_text=True)
    assert "p010@example.com" in vip and "p011@example.com" not in vip
    search = viewer.get("/admin/contacts?q=p11").get_data(as_text=True)
    assert "p110@example.com" in search and "p010@example.com" not in search


@pytest.mark.both_backends
def test_merge_then_undo_from_the_contact_page(site):
    post(site.test_client(), "ebook", EBOOK)
    post(site.test_client(), "ebook", {**EBOOK, "email": "jane.doe@example.com", "first_name": "J"})
    winner, loser = _contact_id(site, "jane@example.com"), _contact_id(site, "jane.doe@example.com")
    editor = signed_in(site, "editor")
    token = token_for(editor)
    editor.post(f"/admin/contacts/{winner}/merge", data={"csrf_token": token,
                                                         "other": "jane.doe@example.com"})
    page = editor.get(f"/admin/contacts/{winner}").get_data(as_text=True)
    assert "merged into" in page and "Undo" in page
    assert editor.get(f"/admin/contacts/{loser}").status_code == 302  # to the merged contact
    from engine.contacts.models import ContactMerge
    from engine.db import db
    with site.app_context():
        merge_id = db.session.scalar(select(ContactMerge.id))
    editor.post(f"/admin/contacts/merges/{merge_id}/undo", data={"csrf_token": token})
    assert editor.get(f"/admin/contacts/{loser}").status_code == 200
    audit = signed_in(site, "owner").get("/admin/audit").get_data(as_text=True)
    assert "contact.merge" in audit and "contact.unmerge" in audit


@pytest.mark.both_backends
def test_odd_ids_are_answered_not_crashed_on(site):
    post(site.test_client(), "ebook", EBOOK)
    winner = _contact_id(site, "jane@example.com")
    editor = signed_in(site, "editor")
    token = token_for(editor)
    for after in ("²", "99999999999", "-1"):  # a digit to str.isdigit; beyond INTEGER
        assert editor.get(f"/admin/contacts?after={after}").status_code == 200
        assert editor.get(f"/admin/contacts?sort=oldest&after={after}").status_code == 200
    answer = editor.post(f"/admin/contacts/{winner}/merge", data={"csrf_token": token,
                                                                  "other": "²"})
    assert answer.status_code == 302
    assert "No contact" in editor.get(f"/admin/contacts/{winner}").get_data(as_text=True)
    assert editor.post("/admin/contacts/merges/999/undo",
                       data={"csrf_token": token}).status_code == 404


@pytest.mark.both_backends
def test_gdpr_export_and_erase(site):
    post(site.test_client(), "ebook", EBOOK)
    contact_id = _contact_id(site, "jane@example.com")
    editor = signed_in(site, "editor")
    token = token_for(editor)
    export = editor.post(f"/admin/contacts/{contact_id}/export", data={"csrf_token": token})
    data = json.loads(export.get_data(as_text=True))
    assert data["contact"]["email"] == "jane@example.com" and data["form_submissions"]
    editor.post(f"/admin/contacts/{contact_id}/erase", data={"csrf_token": token, "confirm": "no"})
    assert _contact_id(site, "jane@example.com") == contact_id  # not confirmed: kept
    editor.post(f"/admin/contacts/{contact_id}/erase",
                data={"csrf_token": token, "confirm": "erase"})
    assert _contact_id(site, "jane@example.com") is None
    assert "Jane" not in editor.get(f"/admin/contacts/{contact_id}").get_data(as_text=True)


@pytest.mark.both_backends
def test_dashboard_shows_conversion_per_form_and_top_pages(site):
    """Conversion is over the browsers tracking saw viewing the form: the one that submitted it
    (after seeing it four times) and one that only looked."""
    from sqlalchemy import select

    from engine import events
    from engine.db import db, write
    from engine.forms.models import Submission
    post(site.test_client(), "ebook", EBOOK)
    with site.app_context(), write():
        submitter = db.session.scalar(select(Submission.visitor_id))
        events.record_many(
            [{"type": "form_view", "visitor_id": submitter, "url": "http://site.test/guide",
              "properties": {"form": "ebook"}}] * 4
            + [{"type": "form_view", "visitor_id": "b" * 32, "url": "http://site.test/guide",
                "properties": {"form": "ebook"}}]
            + [{"type": "page_view", "visitor_id": "a" * 32, "url": "http://site.test/pricing"}] * 3
            + [{"type": "page_view", "visitor_id": "a" * 32, "url": "http://site.test/blog"}])
    from markupsafe import escape

    from engine.forms import service
    with site.app_context():
        title = str(escape(service.get("ebook").title))
    page = signed_in(site, "viewer").get("/admin/").get_data(as_text=True)
    row = page.split(title)[1].split("</tr>")[0]
    assert '<td class="num">1</td>' in row and '<td class="num">2</td>' in row and "50.0%" in row
    assert page.index("<td style=\"overflow-wrap:anywhere\">/pricing</td>") < page.index(
        "<td style=\"overflow-wrap:anywhere\">/blog</td>")


@pytest.mark.both_backends
def test_ids_beyond_any_row_are_not_found(site):
    editor = signed_in(site, "editor")
    for path in ("/admin/contacts/99999999999", "/admin/content/99999999999",
                 "/admin/contacts/2147483648"):
        assert editor.get(path).status_code == 404, path
