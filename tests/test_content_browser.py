"""A visitor in a real browser: home page, navigation to a post, then to a tag archive."""
from __future__ import annotations

import pytest

from tests.content_helpers import load_demo


@pytest.fixture
def demo_server(app, live_server):
    load_demo(app)
    return live_server


@pytest.mark.browser
def test_visitor_reads_home_then_a_post_then_a_tag_archive(demo_server, page):
    page.goto(demo_server + "/")
    assert page.title() == "Brightwater Studio"
    page.get_by_role("heading", level=1).wait_for()
    assert (page.get_by_role("heading", level=1).inner_text()
            == "Emails your customers actually open")
    main_nav = page.get_by_role("navigation", name="Main")
    main_nav.get_by_role("link", name="Blog").click()
    page.wait_for_url(demo_server + "/blog")
    assert page.get_by_role("heading", level=1).inner_text() == "Blog"

    page.get_by_role("link", name="Lead scoring for small teams: fit plus engagement").click()
    page.wait_for_url(demo_server + "/blog/lead-scoring-for-small-teams")
    assert "Tom Reiner" in page.locator(".byline").inner_text()
    assert page.get_by_role("table").count() == 1
    assert main_nav.get_by_role("link", name="Blog").get_attribute("aria-current") == "page"

    page.locator(".post-footer").get_by_role("link", name="automation").click()
    page.wait_for_url(demo_server + "/blog/tag/automation")
    assert page.get_by_role("heading", level=1).inner_text() == "Posts tagged “automation”"
    titles = page.locator(".cards .card h3").all_inner_texts()
    assert "Lead scoring for small teams: fit plus engagement" in titles
    assert "Seven landing page fixes that lift conversions this week" not in titles


@pytest.mark.browser
def test_keyboard_user_can_skip_to_content_and_reach_the_navigation(demo_server, page):
    page.set_viewport_size({"width": 320, "height": 640})
    page.goto(demo_server + "/blog")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    assert skip.evaluate("el => el === document.activeElement")
    assert skip.bounding_box()["y"] >= 0  # visible once focused
    assert page.evaluate("document.documentElement.scrollWidth") <= 320  # no sideways scrolling


@pytest.mark.browser
def test_pages_and_sign_in_log_no_console_errors(demo_server, page):
    """No 404 (the favicon) and nothing the Content-Security-Policy refuses: the landing page
    with its form script and the tracking beacon, a post, a form page and the sign-in page."""
    problems: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("response", lambda response: response.status >= 400 and
            problems.append(f"{response.status} {response.url}"))
    posted: list[str] = []  # a tracking plugin's beacon, when one is enabled, must get through
    page.on("request", lambda request: request.method == "POST" and posted.append(request.url))
    for path in ("/", "/blog/lead-scoring-for-small-teams", "/forms/newsletter", "/auth/login"):
        page.goto(demo_server + path)
        page.wait_for_load_state("networkidle")
    assert problems == []
    icon = page.request.get(demo_server + "/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"].startswith("image/")
    assert all(url.startswith(demo_server) for url in posted)
    assert page.evaluate("window.magnetForms") is None  # the sign-in page runs no form script
    page.goto(demo_server + "/forms/newsletter")
    assert page.evaluate("window.magnetForms") is True  # forms.js ran under the policy
