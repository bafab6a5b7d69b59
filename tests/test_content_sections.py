"""Landing pages made of sections: validation, old pages read as sections, the demo files
round-trip, rendering (escaping, Markdown sanitised), and a child theme overriding one section."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.config import PROJECT_ROOT
from engine.content import sections, service, sync
from tests.content_helpers import load_demo

HERO = {"type": "hero", "headline": "Hello"}


@pytest.mark.parametrize(("bad", "message"), [
    ([HERO, {"type": "video"}], "Section 2: unknown type 'video'"),
    ([{"type": "hero", "eyebrow": "No headline"}], "Section 1 (Hero), headline is required"),
    ([{**HERO, "cta_url": "javascript:alert(1)"}], "Section 1 (Hero), primary button url: "
                                                   "'javascript:alert(1)' is not a safe link"),
    ([HERO, {"type": "benefits", "items": [{"text": "no title"}]}],
     "Section 2 (Benefits), benefits, entry 1, title is required"),
    ([{"type": "stats", "items": [{"value": 38, "label": "open rate"}]}],
     "Section 1 (Stats), numbers, entry 1, value: must be text"),
    ([{**HERO, "colour": "red"}], "Section 1 (Hero): unknown field 'colour'"),
    ([{"type": "form", "form": "Not a slug!"}], "Section 1 (Form), form slug: use lower-case"),
])
def test_bad_sections_are_refused_naming_the_section(bad, message):
    with pytest.raises(sections.SectionError) as refused:
        sections.validate(bad)
    assert message in str(refused.value)


def test_a_refused_save_changes_nothing(app):
    with app.app_context():
        item = service.create_item("page", "Offer", template="landing",
                                   fields={"sections": [HERO]})
        with pytest.raises(service.ContentError, match="not a safe link"):
            service.update_item(item.id, fields={"sections": [
                {**HERO, "headline": "Changed", "cta_url": "data:text/html,x"}]})
        assert service.get_item("page", "offer").fields == {"sections": [HERO]}
        assert len(service.list_revisions(item.id)) == 1


def test_old_pages_are_read_as_the_sections_they_always_showed():
    fields = {"eyebrow": "Free", "headline": "Big news", "cta": {"label": "Go", "url": "#get-it"},
              "secondary_cta": {"label": "Later", "url": "/later"}, "offer": {"title": "Guide"},
              "benefits": [{"title": "One", "text": "1"}], "proof_heading": "Proof",
              "stats": [{"value": 3, "label": "x"}], "testimonials": [{"quote": "Q", "name": "N"}],
              "body_anchor": "register", "smart": {"hero": "block"}}
    assert sections.from_legacy(fields, "Title", "Summary") == [
        {"type": "hero", "eyebrow": "Free", "headline": "Big news", "subheadline": "Summary",
         "cta_label": "Go", "cta_url": "#get-it", "secondary_label": "Later",
         "secondary_url": "/later", "offer_kind": "Free guide", "offer_title": "Guide"},
        {"type": "benefits", "heading": "What you get", "items": [{"title": "One", "text": "1"}]},
        {"type": "stats", "heading": "Proof", "items": [{"value": "3", "label": "x"}]},
        {"type": "testimonials", "items": [{"quote": "Q", "name": "N"}]},
        {"type": "form", "anchor": "register", "page_body": True}]
    assert sections.from_legacy({}, "Title", "")[0] == {"type": "hero", "headline": "Title"}


def test_demo_landing_pages_round_trip_through_sync_and_export(app, tmp_path):
    assert not load_demo(app).errors
    with app.app_context():
        home = service.get_item("page", "home")
        assert [s["type"] for s in home.fields["sections"]] == [
            "hero", "benefits", "stats", "testimonials", "form", "cta"]
        sync.export(tmp_path)
    for name in ("home.md", "webinar.md"):
        original = (PROJECT_ROOT / "content" / "pages" / name).read_text(encoding="utf-8")
        assert (tmp_path / "pages" / name).read_text(encoding="utf-8") == original
    with app.app_context():
        assert "page home" in sync.sync(tmp_path).unchanged


def test_sections_render_escaped_with_markdown_sanitised(app, client):
    with app.app_context():
        service.create_item("page", "Offer", status="published", template="landing", fields={
            "sections": [
                {"type": "hero", "headline": "<b>Bold</b> offer", "cta_label": "Go",
                 "cta_url": "#faq"},
                {"type": "faq", "heading": "Questions", "anchor": "faq", "items": [
                    {"question": "Is it <i>free</i>?", "answer": "Yes.\n\nAlways."}]},
                {"type": "rich_text", "body": "**Strong** <script>alert(1)</script> "
                                              "[link](javascript:alert(2))\n\n[cta url=/x]"},
                {"type": "cta", "text": "Ready?", "button_label": "Start", "button_url": "/go",
                 "style": "secondary"}]})
    html = client.get("/offer").get_data(as_text=True)
    assert "<h1 id=\"hero-heading\">&lt;b&gt;Bold&lt;/b&gt; offer</h1>" in html
    assert '<summary>Is it &lt;i&gt;free&lt;/i&gt;?</summary>' in html
    assert '<p>Yes.</p><p>Always.</p>' in html and 'id="faq"' in html
    assert "<strong>Strong</strong>" in html and '<p class="cta"><a class="button' in html
    assert "<script>alert" not in html and "javascript:" not in html
    assert '<a class="button button-secondary" href="/go">Start</a>' in html


def test_demo_home_page_shows_the_same_offer_and_form(app, client):
    load_demo(app)
    html = client.get("/").get_data(as_text=True)
    assert '<h1 id="hero-heading">Emails your customers actually open</h1>' in html
    assert 'href="#get-it">Get the free e-book</a>' in html
    form_section = html.split('id="get-it"', 1)[1].split("</section>", 1)[0]
    assert "Get your free copy" in form_section and 'action="/forms/ebook"' in form_section
    assert html.index("Priya Raman") < html.index("Get your free copy")
    assert 'href="/webinar">See the webinar</a>' in html


def test_a_child_theme_overrides_one_section_template(make_app, tmp_path):
    themes = tmp_path / "themes"
    shutil.copytree(PROJECT_ROOT / "themes", themes)
    child = themes / "child"
    (child / "templates" / "sections").mkdir(parents=True)
    (child / "theme.toml").write_text('name = "child"\nparent = "default"\n')
    (child / "templates" / "sections" / "section-stats.html").write_text(
        '<section class="child-stats">{% for stat in section["items"] %}'
        "<b>{{ stat.value }}</b>{% endfor %}</section>")
    app = make_app(THEMES_PATH=str(themes))
    load_demo(app)
    with app.app_context():
        app.extensions["magnet.themes"].use("child")
    html = app.test_client().get("/").get_data(as_text=True)
    assert '<section class="child-stats"><b>4,800+</b><b>38%</b>' in html
    assert 'class="stats"' not in html  # the parent's stats template is not used
    assert "Emails your customers actually open" in html and "Priya Raman" in html
    assert Path(child / "templates" / "sections" / "section-stats.html").exists()
