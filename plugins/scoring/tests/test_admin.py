"""Admin → Scoring: rules made, refused, kept unchanged and deleted through their forms, who
may do what, the contact page's panel (whose numbers add up), the dashboard card, and the
contact list's Score column and filter."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from engine.audit import AuditEntry
from engine.contacts.models import Contact
from engine.db import db, utcnow, write
from engine.events import record
from engine.events.models import Activity
from engine.jobs.outbox import OutboxRow
from engine.testing_forms import last_settings_audit, stored_settings, submit_settings
from plugins.scoring.models import Handoff, ScoringRule
from plugins.scoring.tests.admin_support import person, rule, score
from tests.admin_helpers import form_as_shown, signed_in, token_for

PRICING = {"event": "page_view", "filters": [{"prop": "path", "op": "starts_with",
                                               "value": "/pricing"}],
           "cap_count": 3, "cap_period": "day"}
UK = {"match": "all", "groups": [{"match": "all", "conditions": [
    {"kind": "field", "field": "country", "op": "equals", "value": "GB"}]}]}


def stored(app) -> dict[str, dict]:
    with app.app_context():
        rows = db.session.scalars(select(ScoringRule).order_by(ScoringRule.id))
        found = {r.name: {key: getattr(r, key) for key in (
            "id", "kind", "points", "active", "definition", "event", "filters", "cap_count",
            "cap_period", "days", "version", "status")} for r in rows}
        db.session.rollback()
        return found


def audit_of(app, action: str) -> list[tuple[str, dict]]:
    with app.app_context():
        return [(e.target, e.details) for e in db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))]


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_an_editor_makes_a_rule_of_each_kind_through_its_form(app):
    editor = signed_in(app, "editor")
    token = token_for(editor, "/admin/scoring/")
    fit = editor.post("/admin/scoring/new/fit", data={
        "csrf_token": token, "kind": "fit", "name": "  In the UK ", "points": "20",
        "active": "y", "match": "all", "g-0-match": "all", "c-0-0-kind": "field",
        "c-0-0-field": "country", "c-0-0-op": "equals", "c-0-0-value": "GB"})
    engagement = editor.post("/admin/scoring/new/engagement", data=MultiDict({
        "csrf_token": token, "kind": "engagement", "name": "Pricing page", "points": "10",
        "active": "y", "event": "page_view", "f-0-prop": "path", "f-0-op": "starts_with",
        "f-0-value": "/pricing", "f-3-prop": "", "f-3-op": "equals", "f-3-value": "",
        "cap_count": "3", "cap_period": "day"}))
    quiet = editor.post("/admin/scoring/new/inactivity", data={
        "csrf_token": token, "kind": "inactivity", "name": "Gone quiet", "points": "-15",
        "active": "y", "days": "30"})
    assert [fit.status_code, engagement.status_code, quiet.status_code] == [302] * 3
    rules = stored(app)
    assert rules["In the UK"]["definition"] == UK
    assert {k: rules["Pricing page"][k] for k in PRICING} == PRICING
    assert (rules["Gone quiet"]["points"], rules["Gone quiet"]["days"]) == (-15, 30)
    assert {r["status"] for r in rules.values()} == {"recalculating"}  # queued, in progress
    with app.app_context():
        queued = db.session.scalar(select(func.count()).select_from(OutboxRow).where(
            OutboxRow.job == "scoring.recalculate"))
    assert queued == 3
    assert [target for target, _ in audit_of(app, "scoring.rule.create")] == [
        "In the UK", "Pricing page", "Gone quiet"]
    html = editor.get("/admin/scoring/").text
    page = text_of(html)
    assert "+20 when Country equals GB" in page
    assert "+10 for each “Viewed a page” where path starts with “/pricing”, at most 3 times " \
           "a day" in page
    assert "-15 after 30 days without activity" in page
    assert html.count("recalculating&nbsp;0%") == 3


def test_a_bad_rule_is_refused_with_its_message_and_nothing_is_stored(app):
    editor = signed_in(app, "editor")
    token = token_for(editor, "/admin/scoring/")
    cases = [
        ("engagement", {"name": "Anything", "points": "5", "event": ""},
         "Choose an event type to score."),
        ("engagement", {"name": "Zero", "points": "0", "event": "page_view"},
         "Points must be from"),
        ("engagement", {"name": "Big", "points": "5", "event": "page_view", "f-0-prop": "path",
                        "f-0-op": "gte", "f-0-value": "lots"},
         "“path” is not a number: test it with is, contains or starts with."),
        ("fit", {"name": "Own score", "points": "5", "match": "all", "g-0-match": "all",
                 "c-0-0-kind": "score", "c-0-0-which": "fit", "c-0-0-op": "at_least",
                 "c-0-0-value": "3"}, "A fit rule cannot test scores"),
        ("fit", {"name": "Half done", "points": "5", "match": "all", "g-0-match": "all",
                 "c-0-0-kind": "field", "c-0-0-field": "", "c-0-0-op": "equals"},
         "some conditions need more"),
        ("inactivity", {"name": "Never", "points": "-5", "days": "0"}, "from 1 to 3650"),
    ]
    for kind, fields, message in cases:
        answer = editor.post(f"/admin/scoring/new/{kind}", data={
            "csrf_token": token, "kind": kind, "active": "y", **fields})
        assert answer.status_code == 400, (kind, fields)
        assert message in answer.text and "Not saved:" in answer.text
        assert f'value="{fields["name"]}"' in answer.text  # what was typed is still there
    rule(app, "inactivity", "Gone quiet", -10, days=30)
    taken = editor.post("/admin/scoring/new/inactivity", data={
        "csrf_token": token, "kind": "inactivity", "name": "gone  QUIET", "points": "-5",
        "days": "9"})
    assert taken.status_code == 400 and "exists already" in taken.text
    assert list(stored(app)) == ["Gone quiet"] and audit_of(app, "scoring.rule.create") == []


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_viewers_look_editors_change(app, role):
    rule_id = rule(app, "inactivity", "Gone quiet", -10, days=30)
    contact = person(app, "ann@example.com")
    client = signed_in(app, role)
    token = token_for(client)
    page = client.get("/admin/scoring/")
    assert page.status_code == 200 and "Gone quiet" in page.text
    assert ("Add a fit rule" in page.text) == (role == "editor")
    assert client.get(f"/admin/scoring/rules/{rule_id}/status").status_code == 200
    changes = [client.get("/admin/scoring/new/fit"),
               client.get(f"/admin/scoring/rules/{rule_id}/edit"),
               client.get(f"/admin/scoring/rules/{rule_id}/delete"),
               client.post("/admin/scoring/form/count", data={"csrf_token": token,
                                                              "kind": "inactivity"}),
               client.post("/admin/scoring/form/part", data={"csrf_token": token}),
               client.post(f"/admin/scoring/contacts/{contact}/sales-qualified",
                           data={"csrf_token": token})]
    for answer in changes:
        assert (answer.status_code == 403) == (role == "viewer"), answer.request.path
    deleted = client.post(f"/admin/scoring/rules/{rule_id}/delete", data={"csrf_token": token})
    assert (deleted.status_code == 403) == (role == "viewer")
    assert stored(app)["Gone quiet"]["status"] == ("ready" if role == "viewer" else "deleting")


def test_each_form_saved_unchanged_changes_nothing(app):
    owner = signed_in(app, "owner")
    before = stored_settings(app, "scoring")
    submit_settings(owner, "scoring",
                    form_as_shown(owner.get("/admin/plugins/scoring/settings").text))
    assert stored_settings(app, "scoring") == before
    assert last_settings_audit(app) == {"settings": "unchanged"}
    rule(app, "fit", "In the UK", 20, definition=UK)
    rule(app, "engagement", "Pricing page", 10, **PRICING)
    rule(app, "engagement", "Big orders", 25, event="form_submitted", filters=[
        {"prop": "form", "op": "equals", "value": "Order"}])
    rule(app, "inactivity", "Gone quiet", -15, days=30, active=False)
    rules = stored(app)
    for name, values in rules.items():
        path = f"/admin/scoring/rules/{values['id']}/edit"
        answer = owner.post(path, data=MultiDict(form_as_shown(owner.get(path).text)))
        assert answer.status_code == 302, answer.text
        assert f"Rule “{name}” unchanged." in owner.get("/admin/scoring/").text
    assert stored(app) == rules  # same content, same version: no recalculation queued
    assert audit_of(app, "scoring.rule.update") == []


def test_the_form_works_without_javascript_and_counts_who_it_touches(app):
    editor = signed_in(app, "editor")
    token = token_for(editor, "/admin/scoring/")
    ann, bob = person(app, "ann@example.com", country="GB"), person(app, "bob@example.com")
    with app.app_context(), write():
        record("page_view", contact_id=ann, properties={"path": "/pricing/teams"})
        record("page_view", contact_id=bob, properties={"path": "/blog"})
    base = {"csrf_token": token, "kind": "engagement", "name": "Pricing", "points": "10",
            "event": "page_view"}
    shown = editor.post("/admin/scoring/new/engagement", data={**base, "action": "refresh"})
    assert shown.status_code == 200 and 'name="f-0-prop"' not in shown.text
    added = editor.post("/admin/scoring/new/engagement", data={**base, "action": "add-filter"})
    assert '<option value="path">path</option>' in added.text and 'name="f-0-prop"' in added.text
    assert "This rule touches <strong id=\"rule-reach\">2</strong> contacts now" in added.text
    part = editor.post("/admin/scoring/form/part", data={
        **base, "f-0-prop": "path", "f-0-op": "equals", "f-0-value": "x", "action": "add-filter"})
    assert part.text.count('class="condition-inputs filter-row"') == 2
    assert part.headers["HX-Trigger-After-Settle"] == "rule-changed"
    removed = editor.post("/admin/scoring/form/part", data={
        **base, "f-0-prop": "path", "f-0-op": "equals", "f-0-value": "x",
        "action": "remove-filter-0"})
    assert 'name="f-0-prop"' not in removed.text
    assert stored(app) == {}

    def count(**fields):
        return text_of(editor.post("/admin/scoring/form/count",
                                   data={"csrf_token": token, **fields}).text)
    assert "touches 1 contact now" in count(kind="engagement", event="page_view",
                                            **{"f-0-prop": "path", "f-0-op": "contains",
                                               "f-0-value": "PRICING"})
    assert "Choose an event type to score." in count(kind="engagement", event="")
    assert "touches 1 contact now" in count(kind="fit", match="all", **{
        "g-0-match": "all", "c-0-0-kind": "field", "c-0-0-field": "country",
        "c-0-0-op": "equals", "c-0-0-value": "gb"})
    assert "Some conditions need more" in count(kind="fit", match="all", **{
        "g-0-match": "all", "c-0-0-kind": "field", "c-0-0-field": "", "c-0-0-op": "equals"})
    score(app, ann, last_active_at=utcnow() - timedelta(days=40))
    score(app, bob, last_active_at=utcnow() - timedelta(days=5))
    assert "touches 1 contact now" in count(kind="inactivity", days="30")
    assert "touches 2 contacts now" in count(kind="inactivity", days="3")
    fit_page = editor.post("/admin/scoring/new/fit", data={
        "csrf_token": token, "kind": "fit", "name": "UK", "points": "5", "match": "all",
        "g-0-match": "all", "c-0-0-kind": "field", "c-0-0-field": "country",
        "c-0-0-op": "equals", "c-0-0-value": "GB", "action": "add-0"})
    assert 'id="c-0-1"' in fit_page.text and stored(app) == {}  # a row added, nothing saved


def test_deleting_asks_first_and_the_status_is_polled_until_ready(app):
    editor = signed_in(app, "editor")
    token = token_for(editor, "/admin/scoring/")
    rule_id = rule(app, "engagement", "Pricing page", 10, **PRICING)
    with app.app_context(), write() as session:
        session.get(ScoringRule, rule_id).status = "recalculating"
        session.get(ScoringRule, rule_id).progress = 0.42
    polled = editor.get(f"/admin/scoring/rules/{rule_id}/status")
    assert "recalculating&nbsp;42%" in polled.text and "HX-Refresh" not in polled.headers
    with app.app_context(), write() as session:
        session.get(ScoringRule, rule_id).status = "ready"
    assert editor.get(f"/admin/scoring/rules/{rule_id}/status").headers["HX-Refresh"] == "true"
    ask = editor.get(f"/admin/scoring/rules/{rule_id}/delete")
    assert "Delete the rule “Pricing page”?" in ask.text and stored(app)["Pricing page"]
    done = editor.post(f"/admin/scoring/rules/{rule_id}/delete", data={"csrf_token": token},
                       follow_redirects=True)
    assert "Rule “Pricing page” deleted." in done.text
    assert "No rules yet" in done.text  # the only one is gone
    assert stored(app)["Pricing page"]["status"] == "deleting"
    assert audit_of(app, "scoring.rule.delete")[0][0] == "Pricing page"
    assert editor.get(f"/admin/scoring/rules/{rule_id}/edit").status_code == 404


def numbers(html: str, table: str, column: int) -> list[int]:
    """The integers in one column of a panel table's body."""
    body = re.search(rf'id="{table}".*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)[column] for row in rows]
    return [int(text_of(cell).replace("+", "")) for cell in cells]


def figure(html: str, name: str) -> int:
    return int(re.search(rf'id="score-{name}">(-?\d+)<', html).group(1))


def test_the_contact_panel_shows_numbers_that_add_up(app):
    now = utcnow()
    ann = person(app, "ann@example.com", first_name="Ann")
    fit_a = rule(app, "fit", "Decision maker", 20, definition=UK)
    fit_b = rule(app, "fit", "Small company", -3, definition=UK)
    pricing = rule(app, "engagement", "Pricing page", 10, **PRICING)
    webinar = rule(app, "engagement", "Webinar", 7, event="form_submitted")
    quiet = rule(app, "inactivity", "Gone quiet", -5, days=30)
    score(app, ann, fit_rules=(fit_a, fit_b), qualified_at=now - timedelta(days=2),
          awards=((pricing, 10, now - timedelta(days=1)), (pricing, 10, now - timedelta(days=9)),
                  (pricing, 10, now - timedelta(days=44)), (webinar, 7, now - timedelta(days=3)),
                  (quiet, -5, now - timedelta(days=61))))
    with app.app_context(), write() as session:
        session.get(Contact, ann).lifecycle_stage = "marketing_qualified"
        session.add(Handoff(event_id=1, contact_id=ann, stage="marketing_qualified",
                            sent_to="sales@example.com", created_at=now))
    page = signed_in(app, "viewer").get(f"/admin/contacts/{ann}").text
    fit, engagement, combined = (figure(page, n) for n in ("fit", "engagement", "combined"))
    assert fit == 17 and combined == fit + engagement
    assert sum(numbers(page, "fit-lines", 1)) == fit
    assert sum(numbers(page, "engagement-lines", 4)) == engagement  # "now": what is left
    earned, faded = numbers(page, "engagement-lines", 2), numbers(page, "engagement-lines", 3)
    assert earned == [30, 7, -5] and all(f >= 0 for f in faded[:2])
    assert [e - f for e, f in zip(earned, faded)] == numbers(page, "engagement-lines", 4)
    assert numbers(page, "engagement-lines", 1) == [3, 1, 1]  # times
    words = text_of(page)
    assert "MQL since " in words and "Pricing page ×3" in words and "sales@example.com" in words
    assert 'role="img"' in page and "Weekly, as a table" in page
    assert "Mark sales-qualified" not in page  # a viewer
    empty = person(app, "new@example.com")
    fresh = text_of(signed_in(app, "editor", "ed@example.com").get(
        f"/admin/contacts/{empty}").text)
    assert "No fit rule matches this contact." in fresh and "No engagement points yet." in fresh
    assert "Mark sales-qualified" in fresh


def test_an_editor_marks_sales_qualified_forward_only(app):
    editor = signed_in(app, "editor")
    token = token_for(editor)
    ann = person(app, "ann@example.com", lifecycle_stage="marketing_qualified")
    cat = person(app, "cat@example.com", lifecycle_stage="customer")
    done = editor.post(f"/admin/scoring/contacts/{ann}/sales-qualified",
                       data={"csrf_token": token}, follow_redirects=True)
    assert "Marked sales-qualified." in done.text
    refused = editor.post(f"/admin/scoring/contacts/{cat}/sales-qualified",
                          data={"csrf_token": token}, follow_redirects=True)
    assert "stages never move backwards" in refused.text
    assert "Mark sales-qualified" not in refused.text
    again = editor.post(f"/admin/scoring/contacts/{ann}/sales-qualified",
                        data={"csrf_token": token}, follow_redirects=True)
    assert "Not changed" in again.text
    with app.app_context():
        stages = dict(db.session.execute(select(Contact.email, Contact.lifecycle_stage)).all())
        moves = [row.properties for row in db.session.scalars(select(Activity).where(
            Activity.type == "stage_changed"))]
    assert stages == {"ann@example.com": "sales_qualified", "cat@example.com": "customer"}
    assert moves == [{"old": "marketing_qualified", "new": "sales_qualified"}]
    assert audit_of(app, "scoring.sales_qualified") == [
        (f"contact {ann}", {"lifecycle_stage": {"old": "marketing_qualified",
                                                "new": "sales_qualified"}})]
    assert editor.post(f"/admin/scoring/contacts/{ann}/sales-qualified").status_code == 400


def test_dashboard_card_column_and_filter(app):
    now = utcnow()
    big = rule(app, "fit", "Enterprise", 120, definition=UK)
    good = rule(app, "fit", "Director", 60, definition=UK)
    bad = rule(app, "fit", "Student", -25, definition=UK)
    hot = rule(app, "engagement", "Pricing page", 55, **PRICING)
    people = {name: person(app, f"{name}@example.org") for name in (
        "big", "good", "bad", "hot", "none")}
    score(app, people["big"], fit_rules=(big,), qualified_at=now - timedelta(days=3))
    score(app, people["good"], fit_rules=(good,), qualified_at=now - timedelta(days=1))
    score(app, people["bad"], fit_rules=(bad,), poor_fit=True,
          qualified_at=now - timedelta(days=30))
    score(app, people["hot"], awards=((hot, 55, now),))
    viewer = signed_in(app, "viewer")
    card = viewer.get("/admin/").text
    assert re.search(r'id="new-mqls">2<', card)
    table = re.search(r'class="score-bands".*?</table>', card, re.S).group(0)
    bands = dict(re.findall(r"<tr><td>([^<]+)</td><td class=\"num\">(\d+)</td></tr>", table))
    assert bands == {"below 0": "1", "0–24": "0", "25–49": "0", "50–74": "2", "75–99": "0",
                     "100+": "1"}
    assert "/admin/contacts?score=new_mql" in card

    def listed(choice: str) -> set[str]:
        page = viewer.get(f"/admin/contacts?score={choice}").text
        return set(re.findall(r"(\w+)@example\.org", page))
    assert listed("qualified") == {"big", "good", "bad"}
    assert listed("new_mql") == {"big", "good"}
    assert listed("above_mql") == {"big", "good", "hot"}
    assert listed("poor_fit") == {"bad"}
    assert listed("none") == {"none"}
    page = viewer.get("/admin/contacts").text
    cells = dict(re.findall(r"(\w+)@example\.org.*?<td>([^<]*)</td>\s*<td><time", page, re.S))
    assert cells == {"big": "120", "good": "60", "bad": "-25 · poor fit", "hot": "55",
                     "none": "—"}
