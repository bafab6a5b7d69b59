"""A landing page hands its hero or form section to a block (`smart: {hero: slug}` in its front
matter): each visitor sees the section their variant fills, from the page cache, never another
visitor's; pages without `smart:` keep the theme's own sections."""
from __future__ import annotations

import re

import pytest

from engine.content import service as content
from plugins.smart_content.tests.support import BROWSER, LINKEDIN, block

HERO = {**LINKEDIN, "content": "# Hello, LinkedIn reader\n\nA hero for you."}
FORM = {**LINKEDIN, "content": "Book a call instead."}


def landing(app, slug: str, **fields) -> None:
    with app.app_context():
        content.create_item("page", slug.title(), slug=slug, status="published",
                            template="landing", body="The page body.",
                            fields={"headline": "Theme headline", **fields})


@pytest.fixture
def site(make_app):
    app = make_app()
    block(app, "pricing-hero", [HERO], default="# Plans for everyone")
    block(app, "pricing-form", [FORM], default="Fill in the form.")
    landing(app, "pricing", smart={"hero": "pricing-hero", "form": "pricing-form"})
    landing(app, "plain")
    landing(app, "typo", smart={"hero": "no-such-block"})
    return app


def hero(html: str) -> str:
    return html.split('<section class="hero"', 1)[1].split("</section>", 1)[0]


def sections(response) -> dict[str, str]:
    """`{section: variant}` of the blocks the page shows in its sections."""
    found = re.findall(r'data-smart-variant="([^"]+)" data-smart-section="([^"]+)"',
                       response.get_data(as_text=True))
    return {section: variant for variant, section in found}


def get(client, path):
    return client.get(path, headers={"User-Agent": BROWSER})


def test_two_visitors_in_a_row_each_get_their_own_hero(site):
    linkedin, plain = site.test_client(), site.test_client()
    first = get(linkedin, "/pricing?utm_source=linkedin")
    html = first.get_data(as_text=True)
    assert sections(first) == {"hero": "variant-1", "form": "variant-1"}
    assert "Hello, LinkedIn reader" in hero(html) and "Theme headline" not in html
    assert "Book a call instead." in html and "<p>The page body." not in html
    second = get(plain, "/pricing?utm_source=google")
    html = second.get_data(as_text=True)
    assert sections(second) == {"hero": "default", "form": "default"}
    assert "Plans for everyone" in hero(html) and "LinkedIn" not in html
    assert "Fill in the form." in html
    # both copies are cached, each under its own key, and served to the right visitor
    again, other = get(linkedin, "/pricing"), get(plain, "/pricing")
    assert again.headers["X-Magnet-Cache"] == other.headers["X-Magnet-Cache"] == "hit"
    assert sections(again)["hero"] == "variant-1" and sections(other)["hero"] == "default"
    for response in (first, second, again, other):
        assert response.headers["Cache-Control"].startswith("private")


def test_pages_without_smart_keep_the_themes_sections(site):
    for path in ("/plain", "/typo"):  # a name without a block keeps the theme's hero too
        response = get(site.test_client(), path + "?utm_source=linkedin")
        html = response.get_data(as_text=True)
        assert "Theme headline" in hero(html) and "<p>The page body." in html
        assert 'aria-labelledby="hero-heading"' in html and "smart-block" not in html


def test_a_child_theme_keeps_the_sections(site):
    with site.app_context():
        site.extensions["magnet.themes"].use("editorial")  # ships no landing template of its own
    response = get(site.test_client(), "/pricing?utm_source=linkedin")
    assert sections(response) == {"hero": "variant-1", "form": "variant-1"}


def test_a_block_placed_in_a_rich_text_section_shows_each_visitor_their_variant(site):
    with site.app_context():
        content.create_item("page", "Sectioned", slug="sectioned", status="published",
                            template="landing", fields={"sections": [
                                {"type": "hero", "headline": "Sectioned"},
                                {"type": "rich_text", "body": "[smart pricing-form]"}]})
    linkedin = get(site.test_client(), "/sectioned?utm_source=linkedin").get_data(as_text=True)
    assert "Book a call instead." in linkedin
    plain = get(site.test_client(), "/sectioned?utm_source=google").get_data(as_text=True)
    assert "Fill in the form." in plain and "Book a call" not in plain
