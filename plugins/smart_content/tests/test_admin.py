"""The smart content admin: editors build blocks with the rule builder, viewers only look,
View as shows a page as a chosen visitor or contact, the report counts per variant."""
from __future__ import annotations

from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from engine.audit import AuditEntry
from engine.db import db
from plugins.smart_content.models import SmartBlock
from plugins.smart_content.tests.support import LINKEDIN, SALES, block, page, trusted_contact
from tests.admin_helpers import csrf_token, form_as_shown, make_user, sign_in

FORM = {"name": "Pricing call to action", "slug": "pricing-cta", "default": "See our plans.",
        "v-0-name": "LinkedIn", "v-0-content": "Hello LinkedIn!", "v-0-position": "2",
        "v-0-match": "all", "v-0-c-0-kind": "utm_source", "v-0-c-0-op": "is",
        "v-0-c-0-value": "linkedin",
        "v-1-name": "Germany", "v-1-content": "Hallo!", "v-1-position": "1",
        "v-1-match": "any", "v-1-c-0-kind": "country", "v-1-c-0-op": "is",
        "v-1-c-0-value": "DE", "v-1-c-1-kind": "language", "v-1-c-1-op": "is",
        "v-1-c-1-value": "de",
        "v-2-name": "", "v-2-content": "", "v-2-c-0-kind": "", "v-2-c-0-value": ""}


def signed_in(app, role):
    make_user(app, f"{role}@example.com", role)
    client = app.test_client()
    sign_in(client, f"{role}@example.com")
    return client


def test_an_editor_makes_a_block_with_ordered_variants(app):
    client = signed_in(app, "editor")
    form = client.get("/admin/smart-content/new")
    assert form.status_code == 200 and "Show it when" in form.get_data(as_text=True)
    saved = client.post("/admin/smart-content/new",
                        data={**FORM, "csrf_token": csrf_token(form.get_data(as_text=True))})
    assert saved.status_code == 302
    with app.app_context():
        made = db.session.scalar(select(SmartBlock))
        assert [v["name"] for v in made.variants] == ["Germany", "LinkedIn"]
        assert made.variants[0]["rules"]["match"] == "any"
        assert len(made.variants[0]["rules"]["conditions"]) == 2
        assert db.session.scalar(select(AuditEntry.action).where(
            AuditEntry.target == "pricing-cta")) == "smart_content.created"
    listing = client.get("/admin/smart-content/").get_data(as_text=True)
    assert "[smart pricing-cta]" in listing and "Pricing call to action" in listing


def test_the_editor_saved_unchanged_stores_what_it_showed(app):
    block_id = block(app, "cta", [LINKEDIN, SALES], default="# Guide\n\nRead it **now**.")
    with app.app_context():
        before = db.session.get(SmartBlock, block_id)
        stored = (before.slug, before.name, before.default, before.variants)
    client = signed_in(app, "editor")
    shown = client.get(f"/admin/smart-content/{block_id}").get_data(as_text=True)
    assert client.post(f"/admin/smart-content/{block_id}",
                       data=MultiDict(form_as_shown(shown, ""))).status_code == 302
    with app.app_context():
        after = db.session.get(SmartBlock, block_id)
        assert (after.slug, after.name, after.default, after.variants) == stored


def test_a_variant_without_conditions_is_refused_with_a_reason(app):
    client = signed_in(app, "editor")
    token = csrf_token(client.get("/admin/smart-content/new").get_data(as_text=True))
    refused = client.post("/admin/smart-content/new", data={
        **FORM, "v-0-c-0-kind": "", "v-0-c-0-value": "", "csrf_token": token})
    assert refused.status_code == 400
    assert "“LinkedIn” needs at least one condition" in refused.get_data(as_text=True)
    no_token = client.post("/admin/smart-content/new", data=FORM)
    assert no_token.status_code == 400  # CSRF


def test_a_viewer_sees_but_cannot_change(app):
    block_id = block(app, "cta", [LINKEDIN])
    client = signed_in(app, "viewer")
    shown = client.get(f"/admin/smart-content/{block_id}").get_data(as_text=True)
    assert "<fieldset disabled>" in shown and "Save block" not in shown
    token = csrf_token(shown)
    assert client.post(f"/admin/smart-content/{block_id}",
                       data={**FORM, "csrf_token": token}).status_code == 403
    assert client.post(f"/admin/smart-content/{block_id}/delete",
                       data={"csrf_token": token}).status_code == 403
    assert app.test_client().get("/admin/smart-content/").status_code in (302, 401)


def test_view_as_shows_the_page_as_a_visitor_and_as_a_contact(app):
    block(app, "cta", [LINKEDIN, SALES])
    page(app, "offer", "[smart cta]")
    trusted_contact(app, "sam@example.com", "b" * 32, lifecycle_stage="sales_qualified")
    client = signed_in(app, "viewer")
    as_linkedin = client.get("/admin/smart-content/view-as?page=page:offer&utm_source=linkedin")
    assert "LinkedIn visitors" in as_linkedin.get_data(as_text=True)
    as_sam = client.get("/admin/smart-content/view-as?page=page:offer&email=sam@example.com")
    assert "Talk to sales" in as_sam.get_data(as_text=True)
    rendered = client.get("/admin/smart-content/view-as/page?page=page:offer&stage=sales_qualified")
    assert rendered.headers["Cache-Control"] == "no-store"
    assert "Talk to sales today." in rendered.get_data(as_text=True)
    # and it never reached the public cache
    assert "Talk to sales" not in app.test_client().get("/offer").get_data(as_text=True)


def test_the_report_counts_views_and_conversions_per_variant(app):
    block_id = block(app, "cta", [LINKEDIN])
    page(app, "offer", "[smart cta]")
    visitor = app.test_client()
    visitor.get("/offer?utm_source=linkedin")
    visitor.get("/offer")
    app.test_client().get("/offer")
    client = signed_in(app, "viewer")
    report = client.get(f"/admin/smart-content/{block_id}/report").get_data(as_text=True)
    rows = report.split("<tbody>")[1]
    assert "LinkedIn visitors</td><td class=\"num\" data-label=\"Views\">2<" in rows
    assert "Default</td><td class=\"num\" data-label=\"Views\">1<" in rows
