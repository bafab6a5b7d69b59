"""An editor in a real browser: uploads an image, gives it alt text, picks it as a post's
feature image, inserts it into the text, publishes; visitors see it, responsive, with its alt."""
from __future__ import annotations

import pytest

from tests.admin_helpers import PASSWORD, make_user
from tests.media_helpers import jpeg

pytestmark = pytest.mark.browser


def test_editor_uploads_then_picks_a_feature_image_that_visitors_see(page, live_server, app,
                                                                   shots):
    problems: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    make_user(app, "editor@example.com", "editor")
    page.goto(f"{live_server}/admin/media")
    page.get_by_label("Email").fill("editor@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server}/admin/media")

    page.set_input_files("#media-files", files=[
        {"name": "bicycle.jpg", "mimeType": "image/jpeg", "buffer": jpeg(1400, 900)}])
    page.get_by_role("button", name="Upload", exact=True).click()
    page.get_by_text("Uploaded 1 file. 1 image needs alt text").wait_for()
    card = page.locator(".media-card").first
    card.get_by_label("Alt text").fill("A red bicycle against a wall")
    card.get_by_role("button", name="Save").click()
    page.get_by_text("Saved “bicycle”.").wait_for()
    assert page.locator(".media-card .badge-off").count() == 0
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    shots(page, "media-library")

    page.goto(f"{live_server}/admin/content")
    page.get_by_role("button", name="New post").click()
    page.wait_for_url("**/admin/content/*")
    page.get_by_label("Title", exact=True).fill("Cycling to work")
    page.get_by_role("button", name="Choose from library: Feature image URL").click()
    shots(page, "media-picker")
    page.get_by_role("dialog").get_by_role("button", name="bicycle").click()
    assert page.locator("#feature_image").input_value().startswith("/media/")
    page.locator("#body").fill("Our new bike shed.\n\n")
    page.get_by_role("button", name="Insert image").click()
    page.get_by_role("dialog").get_by_role("button", name="bicycle").click()
    assert page.locator("#body").input_value().startswith(
        "Our new bike shed.\n\n![A red bicycle against a wall](/media/")
    page.get_by_role("button", name="Publish now").click()
    page.get_by_text("Published.").wait_for()

    page.goto(f"{live_server}/blog/cycling-to-work")
    feature = page.locator(".feature-image img")
    assert feature.get_attribute("alt") == "A red bicycle against a wall"
    assert "-640.webp 640w" in page.locator(".feature-image source").get_attribute("srcset")
    assert page.evaluate("document.querySelector('.feature-image img').naturalWidth") > 0
    assert page.locator(".prose picture img").get_attribute("alt") == \
        "A red bicycle against a wall"
    shots(page, "media-post")
    assert problems == []
