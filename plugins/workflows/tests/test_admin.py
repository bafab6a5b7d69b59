"""Admin → Workflows: a workflow made, built step by step, activated and watched through its
pages as a marketer would; its settings kept when saved unchanged; bad steps refused; who may
do what; publishing a version that removes an occupied step; enrolling by hand."""
from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from engine.audit import AuditEntry
from engine.db import db
from plugins.workflows.tests.support import (
    enrolment,
    get_workflow,
    path,
    person,
    record,
    site,
    template,
    tick,
    workflow,
)
from tests.admin_helpers import form_as_shown, signed_in, token_for


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEntry.action).where(
            AuditEntry.action.like("workflows.%")).order_by(AuditEntry.id)))


def add_step(client, flow: int, kind: str, fields: dict, after: str = "", exit: int = 0):
    where = f"&after={after}&exit={exit}" if after else ""
    url = f"/admin/workflows/{flow}/steps/new?kind={kind}{where}"
    token = token_for(client, url)
    return client.post(url, data=MultiDict({"csrf_token": token, **fields}))


OPENED_S1 = {"match": "all", "c-0-0-kind": "wf_email", "c-0-0-action": "opened",
             "c-0-0-step": "s1"}


def test_an_editor_builds_activates_and_watches_a_nurture_workflow(make_app, smtp_server,
                                                                    clock, work):
    app = site(make_app, smtp_server)
    welcome = template(app, "Welcome")
    editor = signed_in(app, "editor")
    made = editor.post("/admin/workflows/new", data={
        "csrf_token": token_for(editor, "/admin/workflows/new"), "name": "Nurture",
        "trigger": "form_submitted", "t_form": "", "enrol": "once",
        "exit_on_unsubscribe": "y", "days": [str(d) for d in range(7)]})
    assert made.status_code == 302
    flow = int(made.headers["Location"].rstrip("/").split("/")[-1])
    assert add_step(editor, flow, "send_email", {"template_id": str(welcome)}).status_code == 302
    assert add_step(editor, flow, "wait", {"mode": "duration", "amount": "1", "unit": "days"},
                    after="s1").status_code == 302
    assert add_step(editor, flow, "if", OPENED_S1, after="s2").status_code == 302
    assert add_step(editor, flow, "tag", {"action": "add", "tag": "engaged"},
                    after="s3", exit=0).status_code == 302
    assert add_step(editor, flow, "tag", {"action": "add", "tag": "cold"},
                    after="s3", exit=1).status_code == 302
    draft = get_workflow(app, flow).draft
    assert draft == {"start": "s1", "steps": {
        "s1": {"kind": "send_email", "template_id": welcome, "next": "s2"},
        "s2": {"kind": "wait", "mode": "duration", "minutes": 1440, "next": "s3"},
        "s3": {"kind": "if", "yes": "s4", "no": "s5", "condition": {"match": "all", "conditions": [
            {"kind": "wf_email", "action": "opened", "step": "s1"}]}},
        "s4": {"kind": "tag", "action": "add", "tag": "engaged"},
        "s5": {"kind": "tag", "action": "add", "tag": "cold"}}}
    page = text_of(editor.get(f"/admin/workflows/{flow}").text)
    assert "Not live yet" in page and "Send “Welcome”" in page and "Wait 1 day" in page
    assert "If opened the email of step s1 (since entering)" in page
    assert "yes of s3" in page and "no of s3" in page
    publish = editor.post(f"/admin/workflows/{flow}/publish",
                          data={"csrf_token": token_for(editor, f"/admin/workflows/{flow}")})
    assert publish.status_code == 302 and get_workflow(app, flow).status == "active"

    ann = person(app, "ann@example.com", first_name="Ann")
    record(app, "form_submitted", ann, form="demo")
    work(app)
    record(app, "email_opened", ann, mailing=f"workflow:{flow}:s1", machine=False)
    tick(app, clock, days=1, minutes=1)
    assert path(app, flow, ann)[-1] == ("s4", "tagged engaged")
    page = text_of(editor.get(f"/admin/workflows/{flow}").text)
    assert "0 active 1 completed 0 exited 0 converted" in page
    card = text_of(editor.get(f"/admin/workflows/{flow}").text.split('id="step-s3"')[1]
                   .split("</li>\n  \n")[0])
    assert "0 waiting here 1 passed" in card
    listing = text_of(editor.get("/admin/workflows/").text)
    assert "Nurture active Submits any form 0 1 0" in listing
    contact_page = text_of(editor.get(f"/admin/contacts/{ann}").text)
    assert "s3 · If / else : yes" in contact_page and "s4 · Add or remove a tag : tagged " \
        "engaged" in contact_page and "Came in" in contact_page
    assert actions(app) == ["workflows.create"] + ["workflows.step.add"] * 5 + [
        "workflows.publish"]


def test_settings_saved_unchanged_store_the_same(app):
    with app.app_context():
        from engine.segments import service as segments
        segment = segments.save("Buyers", {"match": "all", "groups": [{"match": "all",
                  "conditions": [{"kind": "tag", "tag": "buyer", "op": "has"}]}]}).id
    trigger = {"kind": "date_field", "field": "birthday", "offset_days": -3, "hour": 8,
               "yearly": True}
    rules = {"enrol": "again", "again_days": 30, "exit_on_unsubscribe": False,
             "exit_segment_id": segment, "quiet_from": 21, "quiet_to": 8, "days": [0, 1, 2]}
    flow = workflow(app, "Birthday", trigger, {"start": "a", "steps": {"a": {"kind": "end"}}},
                    rules=rules, activate=False)
    editor = signed_in(app, "editor")
    url = f"/admin/workflows/{flow}/settings"
    shown = form_as_shown(editor.get(url).text)
    assert editor.post(url, data=MultiDict(shown)).status_code == 302
    saved = get_workflow(app, flow)
    assert (saved.trigger, saved.rules) == (trigger, rules)
    for kind, extra in [("score_reached", {"t_score": "fit", "t_threshold": "40"}),
                        ("event", {"t_type": "page_view"}), ("manual", {})]:
        fields = MultiDict(shown)
        fields["trigger"] = kind
        for key, value in extra.items():
            fields[key] = value
        assert editor.post(url, data=fields).status_code == 302
        shown = form_as_shown(editor.get(url).text)
        before = get_workflow(app, flow).trigger
        editor.post(url, data=MultiDict(shown))
        assert get_workflow(app, flow).trigger == before
    assert get_workflow(app, flow).trigger == {"kind": "manual"}
    bad = MultiDict(shown)
    bad["quiet_from"], bad["quiet_to"] = "22", ""
    refused = editor.post(url, data=bad)
    assert refused.status_code == 400 and "Quiet hours need a start and an end." in refused.text
    assert get_workflow(app, flow).rules == rules


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_a_viewer_sees_but_cannot_change(app, role):
    flow = workflow(app, "Seen", {"kind": "manual"},
                    {"start": "a", "steps": {"a": {"kind": "tag", "tag": "x"}}})
    client = signed_in(app, role)
    assert "Seen" in client.get("/admin/workflows/").text
    page = client.get(f"/admin/workflows/{flow}").text
    assert "Add the tag “x”" in page
    token = token_for(client, "/admin/workflows/")
    posted = [client.post(f"/admin/workflows/{flow}/pause", data={"csrf_token": token}),
              client.post(f"/admin/workflows/{flow}/steps/a/delete",
                          data={"csrf_token": token}),
              client.post("/admin/workflows/new", data={"csrf_token": token, "name": "N",
                                                         "trigger": "manual"})]
    if role == "viewer":
        assert [r.status_code for r in posted] == [403] * 3 and "Pause" not in page
        assert get_workflow(app, flow).status == "active"
    else:
        assert posted[0].status_code == 302 and get_workflow(app, flow).status == "paused"
    no_token = client.post(f"/admin/workflows/{flow}/resume")
    assert no_token.status_code in (400, 403)


def test_a_bad_step_shows_its_error_and_stores_nothing(app):
    flow = workflow(app, "Careful", {"kind": "manual"},
                    {"start": "a", "steps": {"a": {"kind": "tag", "tag": "x"}}}, activate=False)
    editor = signed_in(app, "editor")
    before = get_workflow(app, flow).draft
    cases = [("wait", {"mode": "duration", "amount": "soon", "unit": "days"},
              "must be a whole number"),
             ("split", {"p-0-label": "A", "p-0-share": "60", "p-1-label": "B",
                        "p-1-share": "60"}, "add up to 100%"),
             ("if", {"match": "all", "c-0-0-kind": "field", "c-0-0-field": "",
                     "c-0-0-op": "equals"}, "Choose a field."),
             ("notify", {"to": "not-an-address", "subject": "Hi"}, "is not an email address"),
             ("adjust_score", {"points": "<b>lots</b>"}, "must be a whole number")]
    for kind, fields, message in cases:
        answer = add_step(editor, flow, kind, fields, after="a")
        assert answer.status_code == 400, kind
        assert "Not saved:" in answer.text and message in answer.text
    assert "&lt;b&gt;lots&lt;/b&gt;" in answer.text and "<b>lots" not in answer.text
    assert get_workflow(app, flow).draft == before
    assert actions(app) == []


def test_publishing_without_an_occupied_step_asks_where_its_contacts_go(app):
    flow = workflow(app, "Drip", {"kind": "manual"}, {"start": "s1", "steps": {
        "s1": {"kind": "wait", "mode": "duration", "minutes": 60, "next": "s2"},
        "s2": {"kind": "tag", "tag": "done"}}})
    ann = person(app, "ann@example.com")
    editor = signed_in(app, "editor")
    token = token_for(editor, f"/admin/workflows/{flow}")
    assert editor.post(f"/admin/workflows/{flow}/enrol", data={
        "csrf_token": token, "how": "email", "email": "ann@example.com"}).status_code == 302
    assert enrolment(app, flow, ann).step == "s1"
    assert editor.post(f"/admin/workflows/{flow}/steps/s1/delete",
                       data={"csrf_token": token}).status_code == 302
    assert get_workflow(app, flow).draft == {"start": "s2", "steps": {
        "s2": {"kind": "tag", "tag": "done", "action": "add"}}}
    page = text_of(editor.get(f"/admin/workflows/{flow}").text)
    assert "Unpublished changes." in page
    asked = editor.get(f"/admin/workflows/{flow}/publish").text
    assert "1 contact at s1 · Wait go to" in text_of(asked)
    refused = editor.post(f"/admin/workflows/{flow}/publish", data={"csrf_token": token})
    assert refused.status_code == 400 and "say where they go" in refused.text
    assert get_workflow(app, flow).version == 1
    done = editor.post(f"/admin/workflows/{flow}/publish",
                       data={"csrf_token": token, "move-s1": "s2"})
    assert done.status_code == 302 and get_workflow(app, flow).version == 2
    moved = enrolment(app, flow, ann)
    assert (moved.step, moved.version) == ("s2", 2)


def test_enrolling_by_email(app):
    flow = workflow(app, "Hand", {"kind": "manual"}, {"start": "s1", "steps": {
        "s1": {"kind": "wait", "mode": "duration", "minutes": 60}}})
    ann, bob = person(app, "ann@example.com"), person(app, "bob@example.com")
    editor = signed_in(app, "editor")
    url = f"/admin/workflows/{flow}/enrol"
    token = token_for(editor, url)
    one = editor.post(url, data={"csrf_token": token, "how": "email",
                                 "email": "ANN@example.com"}, follow_redirects=True)
    assert "1 enrolled." in one.text
    unknown = editor.post(url, data={"csrf_token": token, "how": "email",
                                     "email": "zed@example.com"}, follow_redirects=True)
    assert "0 enrolled; 1 unknown: zed@example.com." in unknown.text
    assert enrolment(app, flow, ann) and enrolment(app, flow, bob) is None
    assert actions(app) == ["workflows.enrol"] * 2


def test_enrolling_by_csv(app):
    flow = workflow(app, "Hand", {"kind": "manual"}, {"start": "s1", "steps": {
        "s1": {"kind": "wait", "mode": "duration", "minutes": 60}}})
    ann, bob = person(app, "ann@example.com"), person(app, "bob@example.com")
    editor = signed_in(app, "editor")
    url = f"/admin/workflows/{flow}/enrol"
    token = token_for(editor, url)
    big = io.BytesIO(b"email\n" + b"a@example.com\n" * 60_000)
    refused = editor.post(url, data={"csrf_token": token, "how": "csv",
                                     "file": (big, "big.csv")},
                          content_type="multipart/form-data", follow_redirects=True)
    assert "Nobody enrolled: The file is over 512 KB" in refused.text
    editor.post(url, data={"csrf_token": token, "how": "email", "email": "ann@example.com"})
    csv = io.BytesIO(b"name,email\nAnn,ann@example.com\nBob,bob@example.com\nX,<x>@nowhere\n")
    many = editor.post(url, data={"csrf_token": token, "how": "csv",
                                  "file": (csv, "people.csv")},
                       content_type="multipart/form-data", follow_redirects=True)
    page = text_of(many.text)
    assert "1 enrolled; 1 skipped (already in, or not allowed again by the rules); 1 unknown:" \
        in page and "&lt;x&gt;@nowhere" in many.text
    assert enrolment(app, flow, ann) and enrolment(app, flow, bob)
    assert actions(app) == ["workflows.enrol"] * 2
