"""An owner changes the brand colour in Site settings and sees it on the public site."""
from __future__ import annotations

import pytest

from tests.admin_helpers import PASSWORD, make_user
from tests.forms_support import forms_site

pytestmark = pytest.mark.browser


@pytest.fixture
def app(make_app):
    return forms_site(make_app)


def test_owner_changes_the_brand_colour_and_visitors_see_it(page, live_server, app):
    refused: list[str] = []
    page.on("console", lambda message: message.type == "error" and refused.append(message.text))
    public = f"{live_server}/forms/newsletter"
    button = "main button[type=submit]"
    page.goto(public)  # cached for visitors now
    assert page.eval_on_selector(button, "b => getComputedStyle(b).backgroundColor") \
        == "rgb(10, 91, 176)"  # the theme's own primary colour
    make_user(app, "owner@example.com", "owner")
    page.goto(f"{live_server}/admin/")
    page.get_by_label("Email").fill("owner@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Site settings").click()
    page.get_by_label("Primary colour").fill("#ffd000")
    page.get_by_role("button", name="Save site settings").click()
    assert "contrast 1.47:1" in page.get_by_role("alert").all_inner_texts()[-1]  # refused
    assert refused == ["Failed to load resource: the server responded with a status of 400 "
                       "(BAD REQUEST)"]  # the refusal's own status, and nothing else
    refused.clear()
    page.get_by_label("Primary colour").fill("#7a1fa2")
    page.get_by_role("button", name="Save site settings").click()
    page.get_by_text("Site settings saved: primary colour.").wait_for()
    page.context.clear_cookies()  # a visitor again
    page.goto(public)
    assert page.eval_on_selector(button, "b => getComputedStyle(b).backgroundColor") \
        == "rgb(122, 31, 162)"
    assert refused == []
