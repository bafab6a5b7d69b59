"""The section editor of a landing page in the admin: what it shows, saving, refusing, and (in a
real browser) editing a hero, moving a section and seeing the result on the public site."""
from __future__ import annotations

import re

import pytest
from werkzeug.datastructures import MultiDict

from engine import audit
from engine.content import service
from tests.admin_helpers import browser_signed_in, form_as_shown, signed_in
from tests.content_helpers import load_demo


def _editor(app, client, slug="home"):
    with app.app_context():
        item = service.get_item("page", slug)
    path = f"/admin/content/{item.id}"
    return item, path, client.get(path).get_data(as_text=True)


def _set(fields, name, value):
    """The form as shown, with one field changed (as a browser posts it)."""
    return MultiDict([(k, value if k == name else v) for k, v in fields])


def test_editor_shows_sections_saves_unchanged_as_is_and_refuses_bad_input(app):
    load_demo(app)
    client = signed_in(app, "editor")
    item, path, html = _editor(app, client)
    assert 'value="Emails your customers actually open"' in html
    assert re.search(r'<input type="text" id="s1-image" name="s1-image" value=""[^>]*'
                     r"data-media-picker", html)
    fields = form_as_shown(html, path)
    assert client.post(path, data=MultiDict(fields)).status_code == 302  # saved untouched
    with app.app_context():
        assert service.get_item("page", "home").fields == item.fields

    bad = _set(fields, "s1-cta_url", "javascript:alert(1)")
    shown = client.post(path, data=bad, follow_redirects=True).get_data(as_text=True)
    assert "Not saved: Section 1 (Hero), primary button url" in shown
    assert 'value="javascript:alert(1)"' in shown  # what was typed is kept to be corrected
    with app.app_context():
        assert service.get_item("page", "home").fields == item.fields

    good = _set(fields, "s1-headline", "A <new> headline")
    client.post(path, data=good)
    with app.app_context():
        stored = service.get_item("page", "home")
        assert stored.fields["sections"][0]["headline"] == "A <new> headline"
        assert service.list_revisions(stored.id)[0].snapshot["fields"] == stored.fields
        entry = audit.recent(1, action="content.sections")[0]
        assert entry.actor == "editor@example.com" and entry.details["changes"] == [
            {"section": 1, "field": "headline", "old": "Emails your customers actually open",
             "new": "A <new> headline"}]
    assert "A &lt;new&gt; headline" in app.test_client().get("/").get_data(as_text=True)


def test_old_landing_page_gets_its_sections_on_first_change(app):
    with app.app_context():
        service.create_item("page", "Old", status="published", template="landing",
                            body="Body with [form ebook]", fields={"headline": "Old headline"})
    client = signed_in(app, "editor")
    item, path, html = _editor(app, client, "old")
    assert 'value="Old headline"' in html and ">Body with [form ebook]</textarea>" in html
    fields = form_as_shown(html, path)
    client.post(path, data=MultiDict(fields))
    with app.app_context():
        assert service.get_item("page", "old").fields == {"headline": "Old headline"}
    client.post(path, data=_set(fields, "s1-headline", "New headline"))
    with app.app_context():
        assert service.get_item("page", "old").fields == {"sections": [
            {"type": "hero", "headline": "New headline"},
            {"type": "form", "intro": "Body with [form ebook]", "anchor": "get-it"}]}


def test_preview_renders_sections_through_the_theme(app):
    load_demo(app)
    client = signed_in(app, "editor")
    item, path, html = _editor(app, client)
    fields = _set(form_as_shown(html, path), "s1-headline", "Previewed **headline**")
    preview = client.post("/admin/content/preview", data=fields).get_data(as_text=True)
    assert '<h1 id="hero-heading">Previewed **headline**</h1>' in preview
    assert "Trusted by owners" in preview


def test_preview_of_a_list_section_without_entries_says_what_is_missing(app):
    """A section just added has no entries yet: the preview says so instead of failing."""
    load_demo(app)
    client = signed_in(app, "editor")
    item, path, html = _editor(app, client)
    fields = MultiDict(form_as_shown(html, path))
    for kind in ("faq", "benefits", "stats", "testimonials"):
        posted = fields.copy()
        posted.add("section", "new1")
        posted.add("snew1-type", kind)
        response = client.post("/admin/content/preview", data=posted)
        assert response.status_code == 200, kind
        assert "Not valid yet: Section 7" in response.get_data(as_text=True)


def test_hero_image_from_the_library_is_responsive_with_its_alt_text(app):
    from tests.media_helpers import jpeg, upload
    load_demo(app)
    client = signed_in(app, "editor")
    upload(client, ("sun.jpg", jpeg(gps=False)), alt="A yellow sun")
    with app.app_context():
        from engine.media import service as media
        url = media.search("")[0].url
    item, path, html = _editor(app, client)
    fields = form_as_shown(html, path)
    fields = [(k, "" if k.startswith("s1-offer") else v) for k, v in fields]
    client.post(path, data=_set(fields, "s1-image", url))
    public = app.test_client().get("/").get_data(as_text=True)
    hero = public[public.index('class="hero-image"'):][:600]
    assert "<picture>" in hero and 'alt="A yellow sun"' in hero


@pytest.mark.browser
def test_editor_edits_the_hero_moves_a_section_and_the_site_shows_it(app, live_server, page):
    load_demo(app)
    page.set_viewport_size({"width": 375, "height": 800})
    browser_signed_in(page, live_server, app, "editor@example.com", "editor")
    with app.app_context():
        home = service.get_item("page", "home")
    page.goto(f"{live_server}/admin/content/{home.id}")
    page.locator("#preview h1#hero-heading").wait_for()  # the live preview shows the sections
    page.get_by_label("Headline (required)").fill("Emails people are glad to get")
    page.locator("#preview h1", has_text="Emails people are glad to get").wait_for()
    page.get_by_role("button", name="Move up Testimonials").click()
    assert page.locator("[data-section-status]").inner_text() == (
        "Testimonials section moved to position 3.")
    page.get_by_label("Add a section").select_option(label="Questions and answers")
    page.get_by_role("button", name="Add section").click()
    added = page.locator("[data-section]").last
    assert added.locator("[data-item]").count() == 1  # one entry to fill in, ready
    page.locator("#preview .field-error", has_text="questions is required").wait_for()
    added.get_by_label("Question (required)").fill("Is it free?")
    added.get_by_label("Answer (required)").fill("Yes.")
    page.get_by_label("Add a section").select_option(label="Hero")
    page.get_by_role("button", name="Add section").click()
    assert page.locator("[data-section]").last.get_by_role(
        "button", name="Choose from library: Image URL").count() == 1
    page.get_by_role("button", name="Remove Hero").last.click()
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("Saved.").wait_for()
    public = page.context.browser.new_context().new_page()
    public.goto(f"{live_server}/")
    assert public.locator("h1").inner_text() == "Emails people are glad to get"
    html = public.content()
    assert html.index("Priya Raman") < html.index("4,800+")  # quotes now come before the stats
    assert "Is it free?" in html
    public.close()
