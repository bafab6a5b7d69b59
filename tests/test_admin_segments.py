"""Admin → Segments: who may do what, the builder (with and without JavaScript), the live
count, saving (and refusing), members a page at a time, CSV export, rebuild, delete, and the
segments a contact is in on the contact page and the contact list."""
from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from engine.audit import AuditEntry
from engine.contacts import service as contacts
from engine.db import db, write
from engine.segments import service as segments
from engine.segments.models import Segment
from tests.admin_helpers import form_as_shown, signed_in, token_for

UK = {"match": "all", "groups": [{"match": "all", "conditions": [
    {"kind": "field", "field": "country", "op": "equals", "value": "GB"}]}]}


def people(app, *rows):
    with app.app_context(), write():
        for email, values in rows:
            contacts.upsert(email, values)


def segment_named(app, name):
    with app.app_context():
        found = segments.by_name(name)
        db.session.expunge_all()
        return found


def saved(app, work, name, definition):
    with app.app_context():
        segment_id = segments.save(name, definition).id
    work(app)
    return segment_id


def audit_of(app, action):
    with app.app_context():
        return [(e.target, e.details) for e in db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))]


def builder_form(token, name="UK people", **rows):
    """A builder post: `rows` maps "c-0-0-field" style names (without the "c-") to values."""
    data = {"csrf_token": token, "name": name, "match": "all", "g-0-match": "all"}
    data.update({f"c-{key.replace('_', '-', 2)}": value for key, value in rows.items()})
    return data


@pytest.mark.parametrize("role", ["viewer", "editor", "owner"])
def test_viewers_look_editors_change(app, work, role):
    segment_id = saved(app, work, "UK", UK)
    client = signed_in(app, role)
    token = token_for(client)
    for path in ("/admin/segments", f"/admin/segments/{segment_id}",
                 f"/admin/segments/{segment_id}/status"):
        assert client.get(path).status_code == 200, path
    changes = [client.get("/admin/segments/new"), client.get(f"/admin/segments/{segment_id}/edit")]
    for path in ("/admin/segments/new", f"/admin/segments/{segment_id}/edit",
                 "/admin/segments/builder", "/admin/segments/count",
                 f"/admin/segments/{segment_id}/rebuild",
                 f"/admin/segments/{segment_id}/members.csv"):
        changes.append(client.post(path, data={"csrf_token": token}))
    for response in changes:
        response.close()
        assert (response.status_code == 403) == (role == "viewer"), response.request.path
    page = client.get(f"/admin/segments/{segment_id}").get_data(as_text=True)
    assert ("Edit</a>" in page) == (role != "viewer")
    assert ("Delete segment" in page) == (role != "viewer")
    deleted = client.post(f"/admin/segments/{segment_id}/delete", data={"csrf_token": token})
    assert (deleted.status_code == 403) == (role == "viewer")
    assert (segment_named(app, "UK") is None) == (role != "viewer")


def test_changes_need_the_csrf_token(app):
    editor = signed_in(app, "editor")
    data = builder_form("", **{"0_0_kind": "tag", "0_0_tag": "vip"})
    del data["csrf_token"]
    assert editor.post("/admin/segments/new", data=data).status_code == 400
    assert editor.post("/admin/segments/count", data=data).status_code == 400
    assert segment_named(app, "UK people") is None


@pytest.mark.both_backends
def test_the_live_count_says_how_many_match_or_what_to_fix(app):
    people(app, ("ann@example.com", {"country": "GB"}), ("bob@example.com", {"country": "GB"}),
           ("cat@example.com", {"country": "FR"}))
    editor = signed_in(app, "editor")
    token = token_for(editor)
    count = editor.post("/admin/segments/count", data=builder_form(
        token, **{"0_0_kind": "field", "0_0_field": "country", "0_0_op": "equals",
                  "0_0_value": "gb"}))
    html = count.get_data(as_text=True)
    assert count.status_code == 200 and "<strong>2</strong> contacts match now" in html
    words = editor.post("/admin/segments/words/0/0", data=builder_form(
        token, **{"0_0_kind": "field", "0_0_field": "country", "0_0_op": "equals",
                  "0_0_value": ""})).get_data(as_text=True)
    assert "Country equals …" in words and "Type or choose a value." in words
    for bad in ({"0_0_kind": "field", "0_0_field": "country", "0_0_op": "equals",
                 "0_0_value": ""},  # unfinished
                {"0_0_kind": "activity", "0_0_event": "purchase", "0_0_count": "many"},
                {"0_0_kind": "martian"},
                {"0_0_kind": "segment", "0_0_segment": "99999999999999999999"},
                {}):  # no condition at all
        answer = editor.post("/admin/segments/count", data=builder_form(token, **bad))
        text = answer.get_data(as_text=True)
        assert answer.status_code == 200 and "class=\"count-error\"" in text, bad
    told = editor.post("/admin/segments/words/0/0", data=builder_form(  # beside the row
        token, **{"0_0_kind": "activity", "0_0_event": "purchase", "0_0_count": "many"}))
    assert "The number of times must be a number." in told.get_data(as_text=True)
    gone = editor.post("/admin/segments/words/3/9", data=builder_form(token))  # a row removed
    assert gone.status_code == 200 and gone.get_data(as_text=True) == ""


def test_saving_with_errors_shows_them_and_stores_nothing(app):
    editor = signed_in(app, "editor")
    token = token_for(editor)
    no_name = editor.post("/admin/segments/new", data=builder_form(
        token, name=" ", **{"0_0_kind": "tag", "0_0_tag": "vip", "0_0_op": "has"}))
    assert no_name.status_code == 400
    assert "Not saved: Give the segment a name." in no_name.get_data(as_text=True)
    unfinished = editor.post("/admin/segments/new", data=builder_form(
        token, **{"0_0_kind": "field", "0_0_field": "", "0_0_op": "equals", "0_0_value": "x"}))
    html = unfinished.get_data(as_text=True)
    assert unfinished.status_code == 400 and "Choose a field." in html
    assert 'value="UK people"' in html  # what was typed stays
    refused = editor.post("/admin/segments/new", data=builder_form(
        token, **{"0_0_kind": "field", "0_0_field": "country", "0_0_op": "within_last_days",
                  "0_0_days": "x"}))  # an operator of another type is replaced by its first
    assert refused.status_code == 400
    with app.app_context():
        assert segments.all_segments() == []


@pytest.mark.both_backends
def test_a_segment_is_saved_built_shown_and_audited(app, work):
    people(app, ("ann@example.com", {"country": "GB", "first_name": "Ann"}),
           ("bob@example.com", {"country": "FR"}))
    editor = signed_in(app, "editor")
    response = editor.post("/admin/segments/new", data=builder_form(
        token_for(editor), **{"0_0_kind": "field", "0_0_field": "country", "0_0_op": "equals",
                              "0_0_value": "GB"}))
    assert response.status_code == 302
    segment = segment_named(app, "UK people")
    assert segment.definition == UK and segment.status == "building"
    building = editor.get(f"/admin/segments/{segment.id}").get_data(as_text=True)
    assert "building&nbsp;0%" in building and "hx-trigger=\"every 2s\"" in building
    work(app)
    status = editor.get(f"/admin/segments/{segment.id}/status")
    assert status.headers["HX-Refresh"] == "true" and "ready" in status.get_data(as_text=True)
    page = editor.get(f"/admin/segments/{segment.id}").get_data(as_text=True)
    assert "Country equals GB" in page and "1 member<" in page and "ann@example.com" in page
    assert "bob@example.com" not in page
    listed = editor.get("/admin/segments").get_data(as_text=True)
    assert "UK people" in listed and ">ready<" in listed
    assert audit_of(app, "segment.create") == [("UK people", {
        "name": "UK people", "description": "", "conditions": "Country equals GB"})]

    edit = editor.get(f"/admin/segments/{segment.id}/edit").get_data(as_text=True)
    fields = [(k, "FR" if k == "c-0-0-value" else v) for k, v in form_as_shown(edit)]
    response = editor.post(f"/admin/segments/{segment.id}/edit", data=MultiDict(fields))
    assert response.status_code == 302
    assert audit_of(app, "segment.update") == [("UK people", {"conditions": {
        "old": "Country equals GB", "new": "Country equals FR"}})]


@pytest.mark.both_backends
def test_the_builder_saves_what_it_showed_for_every_kind(app, work):
    """Each kind of condition is shown in the builder and read back unchanged."""
    with app.app_context(), write():
        contacts.define_field("team_size", "Team size", "number")
        contacts.define_field("plan", "Plan", "choice", ["free", "pro"])
        contacts.define_field("birthday", "Birthday", "date")
    other = saved(app, work, "UK", UK)
    every_kind = {"match": "any", "groups": [
        {"match": "all", "conditions": [
            {"kind": "field", "field": "team_size", "op": "gte", "value": 10},
            {"kind": "field", "field": "plan", "op": "equals", "value": "pro"},
            {"kind": "field", "field": "birthday", "op": "anniversary_within_days", "days": 7},
            {"kind": "field", "field": "phone", "op": "is_empty"},
            {"kind": "tag", "tag": "vip", "op": "has_not"},
            {"kind": "list", "list": "newsletter", "status": "pending", "op": "is"},
            {"kind": "stage", "stages": ["lead", "customer"], "op": "is_not"}]},
        {"match": "any", "conditions": [
            {"kind": "consent", "value": "granted"},
            {"kind": "company", "field": "domain", "op": "starts_with", "value": "acme"},
            {"kind": "created", "op": "within_last_days", "days": 30},
            {"kind": "created", "op": "before", "value": "2026-01-01"},
            {"kind": "activity", "event": "purchase", "op": "at_least", "count": 3,
             "prop": "amount", "value": 9.5, "days": 30},
            {"kind": "activity", "event": "form_submitted", "op": "fewer_than", "count": 1},
            {"kind": "segment", "segment": other, "op": "not_in"}]}]}
    with app.app_context():
        segment_id = segments.save("Every kind", every_kind).id
    editor = signed_in(app, "editor")
    page = editor.get(f"/admin/segments/{segment_id}/edit").get_data(as_text=True)
    response = editor.post(f"/admin/segments/{segment_id}/edit",
                           data=MultiDict(form_as_shown(page)))
    assert response.status_code == 302, response.get_data(as_text=True)
    assert segment_named(app, "Every kind").definition == every_kind
    assert audit_of(app, "segment.update")[-1][1] == {"segment": "saved unchanged"}
    shown = editor.get(f"/admin/segments/{segment_id}").get_data(as_text=True)
    for words in ("Team size is at least 10", "Birthday has its anniversary within the next 7 days",
                  "Does not have the tag “vip”", "Is pending confirmation on the list “newsletter”",
                  "Lifecycle stage is not lead or customer", "Company domain starts with acme",
                  "Made a purchase where amount = 9.5 at least 3 times in the last 30 days",
                  "Never submitted a form", "Is not in the segment “UK”"):
        assert words in shown, words


def test_builder_actions_without_javascript_change_the_page_not_the_segment(app):
    editor = signed_in(app, "editor")
    token = token_for(editor)
    data = builder_form(token, **{"0_0_kind": "tag", "0_0_tag": "vip", "0_0_op": "has"})
    added = editor.post("/admin/segments/new", data={**data, "action": "add-0"})
    html = added.get_data(as_text=True)
    assert added.status_code == 200 and 'id="c-0-1"' in html and 'value="vip"' in html
    grouped = editor.post("/admin/segments/new", data={**data, "action": "add-group"})
    assert 'id="g-1"' in grouped.get_data(as_text=True)
    kind = editor.post("/admin/segments/new", data={**data, "c-0-0-kind": "activity",
                                                     "action": "refresh"})
    assert 'name="c-0-0-event"' in kind.get_data(as_text=True)
    removed = editor.post("/admin/segments/new", data={**data, "action": "remove-0-0"})
    assert 'id="c-0-0"' not in removed.get_data(as_text=True)
    with app.app_context():
        assert segments.all_segments() == []


def test_builder_partials_for_htmx(app):
    editor = signed_in(app, "editor")
    token = token_for(editor)
    data = builder_form(token, **{"0_0_kind": "tag", "0_0_tag": "vip", "0_0_op": "has"})
    added = editor.post("/admin/segments/builder", data={**data, "action": "add-0"})
    html = added.get_data(as_text=True)
    assert added.headers["HX-Trigger-After-Settle"] == "segment-changed"
    assert html.strip().startswith('<li class="condition" id="c-0-1">') and "<form" not in html
    group = editor.post("/admin/segments/builder", data={**data, "action": "add-group"})
    assert 'id="g-1"' in group.get_data(as_text=True)
    removed = editor.post("/admin/segments/builder", data={**data, "action": "remove-0-0"})
    assert removed.status_code == 200 and removed.get_data(as_text=True) == ""
    activity = {**data, "c-0-0-kind": "activity", "c-0-0-event": "form_submitted",
                "action": "row-0-0"}
    row = editor.post("/admin/segments/builder", data=activity).get_data(as_text=True)
    assert '<option value="form">form</option>' in row  # the event's declared properties
    assert 'value="equals"' not in row  # the tag's inputs are gone
    chosen = editor.post("/admin/segments/builder", data={**activity, "c-0-0-prop": "form",
                                                          "c-0-0-value": "webinar"})
    assert "Submitted a form where form = webinar" in chosen.get_data(as_text=True)
    odd = editor.post("/admin/segments/builder", data={**data, "action": "remove-7"})
    assert odd.status_code == 200


def test_the_builder_offers_boolean_properties_as_yes_or_no(app, work):
    from engine.events.types import declare_custom
    with app.app_context():
        declare_custom("trial_started", "Started a trial",
                       {"plan": "string", "seats": "number", "paid": "boolean"})
    editor = signed_in(app, "editor")
    data = builder_form(token_for(editor), "Paying trials",
                        **{"0_0_kind": "activity", "0_0_event": "trial_started",
                           "0_0_op": "at_least", "0_0_count": "1"})
    row = editor.post("/admin/segments/builder", data={**data, "action": "row-0-0"})
    assert '<option value="paid">paid</option>' in row.get_data(as_text=True)
    chosen = editor.post("/admin/segments/builder",
                         data={**data, "c-0-0-prop": "paid", "action": "row-0-0"})
    html = chosen.get_data(as_text=True)
    assert '<option value="true">yes</option><option value="false">no</option>' in html
    assert "Type or choose a value." in html  # nothing chosen yet
    saved_page = editor.post("/admin/segments/new", data={**data, "c-0-0-prop": "paid",
                                                          "c-0-0-value": "false"})
    assert saved_page.status_code == 302, saved_page.get_data(as_text=True)
    segment = segment_named(app, "Paying trials")
    assert segment.definition["groups"][0]["conditions"][0] == {
        "kind": "activity", "event": "trial_started", "op": "at_least", "count": 1,
        "prop": "paid", "value": False}
    page = editor.get(f"/admin/segments/{segment.id}/edit").get_data(as_text=True)
    assert '<option value="false" selected>no</option>' in page
    assert "Started a trial where paid = no" in page
    again = editor.post(f"/admin/segments/{segment.id}/edit", data=MultiDict(form_as_shown(page)))
    assert again.status_code == 302
    assert segment_named(app, "Paying trials").definition == segment.definition


@pytest.mark.both_backends
def test_members_page_by_keyset_and_export_as_csv(app, work):
    people(app, *[(f"m{i:02d}@example.com", {"country": "GB"}) for i in range(55)],
           ("=cmd@example.com", {"country": "GB", "first_name": "=HYPERLINK(\"x\")"}),
           ("out@example.com", {"country": "FR"}))
    segment_id = saved(app, work, "UK", UK)
    editor = signed_in(app, "editor")
    first = editor.get(f"/admin/segments/{segment_id}").get_data(as_text=True)
    assert "56 members" in first and "m00@example.com" in first and "m52@example.com" not in first
    next_link = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    second = editor.get(next_link).get_data(as_text=True)
    assert "m52@example.com" in second and "m00@example.com" not in second
    assert 'rel="next"' not in second
    assert editor.get(f"/admin/segments/{segment_id}?after=x").status_code == 200
    export = editor.post(f"/admin/segments/{segment_id}/members.csv",
                         data={"csrf_token": token_for(editor)})
    body = export.get_data(as_text=True)
    assert export.mimetype == "text/csv" and body.startswith("\ufeffemail,")
    assert 'filename="uk-members.csv"' in export.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(body.lstrip("\ufeff"))))
    assert len(rows) == 56 and "out@example.com" not in body
    first_names = {r["email"]: r["first_name"] for r in rows}  # formulas quoted, inert
    assert first_names["'=cmd@example.com"] == "'=HYPERLINK(\"x\")"
    assert audit_of(app, "segment.export") == [("UK", {})]


def test_rebuild_and_delete(app, work):
    uk = saved(app, work, "UK", UK)
    not_uk = saved(app, work, "Not UK", {"match": "all", "groups": [{"match": "all",
                   "conditions": [{"kind": "segment", "segment": uk, "op": "not_in"}]}]})
    editor = signed_in(app, "editor")
    token = token_for(editor)
    editor.post(f"/admin/segments/{uk}/rebuild", data={"csrf_token": token})
    assert segment_named(app, "UK").status == "building"
    assert audit_of(app, "segment.rebuild") == [("UK", {})]
    refused = editor.post(f"/admin/segments/{uk}/delete", data={"csrf_token": token},
                          follow_redirects=True)
    assert "Not deleted: “Not UK” uses this segment" in refused.get_data(as_text=True)
    assert segment_named(app, "UK") is not None
    editor.post(f"/admin/segments/{not_uk}/delete", data={"csrf_token": token})
    editor.post(f"/admin/segments/{uk}/delete", data={"csrf_token": token})
    with app.app_context():
        assert db.session.scalars(select(Segment)).all() == []
    assert [target for target, _ in audit_of(app, "segment.delete")] == ["Not UK", "UK"]


@pytest.mark.both_backends
def test_a_contact_shows_its_segments_and_the_list_filters_by_segment(app, work):
    people(app, ("ann@example.com", {"country": "GB"}), ("bob@example.com", {"country": "FR"}))
    segment_id = saved(app, work, "UK", UK)
    viewer = signed_in(app, "viewer")
    with app.app_context():
        ann = contacts.find_by_email("ann@example.com").id
        bob = contacts.find_by_email("bob@example.com").id
    page = viewer.get(f"/admin/contacts/{ann}").get_data(as_text=True)
    assert f'href="/admin/segments/{segment_id}">UK</a>' in page and "since <time" in page
    assert "In no segment." in viewer.get(f"/admin/contacts/{bob}").get_data(as_text=True)
    listed = viewer.get(f"/admin/contacts?segment={segment_id}").get_data(as_text=True)
    assert f'<option value="{segment_id}" selected>UK</option>' in listed
    assert "ann@example.com" in listed and "bob@example.com" not in listed


DOMAINS = '''
"""Conditions on the email's domain; one of them broken."""
from engine.contacts.models import Contact
from engine.plugins import hookimpl
from engine.segments.conditions import Compiled, ConditionKind
DEFAULT_ENABLED = True


def at(condition):
    return Compiled(Contact.email.like("%@" + condition["domain"]), fields=frozenset({"email"}))


def broken(condition):
    raise RuntimeError("the condition broke")


@hookimpl
def register_segment_conditions():
    return [ConditionKind("domain", "Email domain", at, lambda c: f"Email at {c['domain']}",
                          [("domain", "Domain", "text", [])]),
            ConditionKind("broken", "Broken", broken, lambda c: "Broken", [])]
'''


def test_plugins_kinds_in_the_builder(make_app, make_plugins, work):
    app = make_app(PLUGINS_PATH=str(make_plugins(domains=DOMAINS)))
    people(app, ("a@acme.example", {}), ("b@other.example", {}))
    editor = signed_in(app, "editor")
    token = token_for(editor)
    row = editor.post("/admin/segments/builder", data={**builder_form(
        token, **{"0_0_kind": "domain"}), "action": "row-0-0"}).get_data(as_text=True)
    assert '<option value="domain" selected>Email domain</option>' in row
    assert 'name="c-0-0-domain"' in row
    data = builder_form(token, name="Acme", **{"0_0_kind": "domain", "0_0_domain": "acme.example"})
    count = editor.post("/admin/segments/count", data=data).get_data(as_text=True)
    assert "<strong>1</strong> contact matches now" in count
    broken = builder_form(token, **{"0_0_kind": "broken"})
    answer = editor.post("/admin/segments/count", data=broken)
    assert answer.status_code == 200 and "count-error" in answer.get_data(as_text=True)
    words = editor.post("/admin/segments/words/0/0", data=broken).get_data(as_text=True)
    assert "its plugin failed" in words
    assert editor.post("/admin/segments/new", data=broken).status_code == 400
    assert editor.post("/admin/segments/new", data=data).status_code == 302
    assert segment_named(app, "Acme").definition["groups"][0]["conditions"] == [
        {"kind": "domain", "domain": "acme.example"}]
    work(app)
    page = editor.get(f"/admin/segments/{segment_named(app, 'Acme').id}").get_data(as_text=True)
    assert "Email at acme.example" in page and "a@acme.example" in page
