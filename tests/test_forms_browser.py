"""A visitor in a real browser: landing page, form, thank-you, download, and coming back."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.contacts.models import Contact
from engine.db import db
from engine.events.models import Activity
from tests.forms_support import FORMS


@pytest.fixture
def app(make_app):
    from engine.content.sync import sync
    app = make_app(FORM_MIN_FILL_SECONDS=0)
    with app.app_context():
        sync(FORMS.parent)
    return app


@pytest.mark.browser
def test_a_visitor_gets_the_ebook_and_is_not_asked_again(app, live_server, page):
    page.goto(f"{live_server}/")
    form = page.locator("form[data-magnet-form=ebook]")
    form.locator("[type=submit]").click()  # nothing filled: told beside each field, nothing sent
    email_error = page.locator("#ebook-email-error")
    assert email_error.inner_text() == "This field is required."
    assert page.locator("#ebook-email").get_attribute("aria-invalid") == "true"

    page.fill("#ebook-email", "Jane@Example.com")
    page.fill("#ebook-first_name", "Jane")
    page.select_option("#ebook-company_size", "2-10")
    page.check("#ebook-role-1")
    page.check("#ebook-consent")
    form.locator("[type=submit]").click()
    done = page.locator(".magnet-form__done")
    done.wait_for()
    assert "Your copy of The Small Business Email Playbook is ready" in done.inner_text()
    with page.expect_download() as info:
        done.locator("a.magnet-download").click()
    pdf = open(info.value.path(), "rb").read()
    assert (pdf.startswith(b"%PDF-")
            and info.value.suggested_filename == "small-business-email-playbook.pdf")

    page.goto(f"{live_server}/")  # back another day: the cached page asks only what is new
    page.locator(".magnet-form__known").wait_for()
    assert "Welcome back, Jane" in page.locator(".magnet-form__known").inner_text()
    assert page.locator("form[data-magnet-form=ebook] input[name=email]").count() == 0
    assert page.locator("form[data-magnet-form=ebook] input[name=first_name]").count() == 0
    assert (page.locator("#ebook-company").is_visible()
            and page.locator("#ebook-country").is_visible())
    page.fill("#ebook-company", "Raman & Daughters Tea")
    page.select_option("#ebook-country", "GB")
    page.locator("form[data-magnet-form=ebook] [type=submit]").click()
    page.locator(".magnet-form__done").wait_for()

    with app.app_context():
        contact = db.session.scalar(select(Contact))
        assert (contact.email, contact.company.name, contact.country) == (
            "jane@example.com", "Raman & Daughters Tea", "GB")
        types = sorted(db.session.scalars(select(Activity.type).where(
            Activity.contact_id == contact.id,
            Activity.type.in_(("asset_downloaded", "form_submitted")))))
        assert types == ["asset_downloaded", "form_submitted", "form_submitted"]


@pytest.mark.browser
def test_the_form_works_without_javascript(app, live_server, browser):
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{live_server}/forms/newsletter")
        page.fill("#newsletter-email", "reader@example.com")
        page.click("form[data-magnet-form=newsletter] [type=submit]")
        page.wait_for_url("**/forms/newsletter/thanks/**")
        assert "Check your inbox" in page.inner_text("main")
    finally:
        context.close()


@pytest.mark.browser
@pytest.mark.parametrize("theme", ["default", "editorial"])
def test_field_errors_stand_out_and_the_summary_links_to_them_without_javascript(
        app, live_server, browser, theme, tmp_path):
    """An error only the server finds (an address without a domain): the field is marked
    invalid and looks it (border, background), its message is not help text, and the summary
    above the form links to it; at desktop and phone widths, in both themes."""
    from engine.themes.registry import current
    with app.app_context():
        current().use(theme)
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        for width in (1280, 375):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(f"{live_server}/forms/newsletter")
            page.fill("#newsletter-email", "reader@example")  # the browser accepts it
            page.fill("#newsletter-first_name", "Rea")
            page.click("form[data-magnet-form=newsletter] [type=submit]")
            page.wait_for_load_state()
            email, name = page.locator("#newsletter-email"), page.locator("#newsletter-first_name")
            assert email.get_attribute("aria-invalid") == "true"
            assert name.get_attribute("aria-invalid") is None
            style = "el => { const s = getComputedStyle(el); " \
                    "return [s.borderTopColor, s.backgroundColor, s.boxShadow]; }"
            bad, good = email.evaluate(style), name.evaluate(style)
            assert bad[0] != good[0] and bad[1] != good[1], (bad, good)
            error = page.locator("#newsletter-email-error")
            assert error.is_visible() and "valid" in error.inner_text()
            error_look = error.evaluate("el => [getComputedStyle(el).color, "
                                        "getComputedStyle(el).fontWeight]")
            label_look = page.locator("label[for=newsletter-email]").evaluate(
                "el => [getComputedStyle(el).color, getComputedStyle(el).fontWeight]")
            assert error_look[0] != label_look[0] and int(error_look[1]) >= 700
            summary = page.locator(".magnet-form__summary a")
            assert summary.count() == 1 and summary.get_attribute("href") == "#newsletter-email"
            assert summary.inner_text().startswith("Email: ")
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            page.screenshot(path=str(tmp_path / f"form-error-{theme}-{width}.png"), full_page=True)
            summary.click()
            assert page.evaluate("location.hash") == "#newsletter-email"
    finally:
        context.close()


@pytest.mark.browser
def test_with_javascript_the_summary_links_to_the_fields_too(app, live_server, page):
    page.goto(f"{live_server}/forms/newsletter")
    page.click("form[data-magnet-form=newsletter] [type=submit]")  # the email left empty
    link = page.locator(".magnet-form__summary a")
    link.wait_for()
    assert link.get_attribute("href") == "#newsletter-email"
    assert link.inner_text() == "Email: This field is required."
    assert page.locator("#newsletter-email").get_attribute("aria-invalid") == "true"
    page.fill("#newsletter-email", "reader@example")  # the server finds this one
    page.click("form[data-magnet-form=newsletter] [type=submit]")
    page.locator(".magnet-form__summary a", has_text="period").wait_for()
    assert page.locator("#newsletter-email").get_attribute("aria-invalid") == "true"
