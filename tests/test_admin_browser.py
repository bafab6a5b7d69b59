"""What people do in the admin, in a real browser (Playwright driving Chromium)."""
from __future__ import annotations

import textwrap
import uuid

import pytest

from tests.admin_helpers import PASSWORD, make_user
from tests.forms_support import forms_site
from tests.test_admin import PLUGIN

pytestmark = pytest.mark.browser


@pytest.fixture
def app(make_app, tmp_path):
    """The demo forms and a small plugin (demo_widget), served by `live_server`."""
    folder = tmp_path / f"magnet_browser_plugins_{uuid.uuid4().hex[:8]}"
    (folder / "demo_widget").mkdir(parents=True)
    (folder / "demo_widget" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    return forms_site(make_app, PLUGINS_PATH=str(folder), fresh_db=True)


def sign_in(page, live_server, app, role):
    email = f"{role}@example.com"
    make_user(app, email, role)
    page.goto(f"{live_server}/admin/")
    assert "/auth/login" in page.url
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server}/admin/")


def test_editor_writes_previews_survives_a_closed_tab_and_schedules(page, live_server, app, clock):
    refused: list[str] = []  # what the Content-Security-Policy (or anything else) refused
    page.on("console", lambda message: message.type == "error" and refused.append(message.text))
    sign_in(page, live_server, app, "editor")
    page.get_by_role("link", name="Pages & posts").click()
    page.get_by_role("button", name="New post").click()
    page.wait_for_url("**/admin/content/*")
    editor_url = page.url
    page.get_by_label("Title", exact=True).fill("Webinar recap")
    body = page.locator("#body")
    body.fill("## What we learned\n\nScores need **decay**.")
    page.locator("#preview h2").wait_for()
    assert page.locator("#preview strong").inner_text() == "decay"
    page.get_by_text("Draft autosaved").wait_for(timeout=8000)
    assert refused == []  # htmx, the live preview and autosave all run under the policy
    body.press("End")
    body.type(" Typed just before the tab closed.")
    page.close(run_before_unload=True)  # the page sends what is left as it goes

    page = page.context.new_page()
    page.goto(editor_url)
    assert "were restored" in page.content()
    assert page.locator("#body").input_value().endswith("Scores need **decay**. Typed just before "
                                                        "the tab closed.")
    assert page.get_by_label("Title", exact=True).input_value() == "Webinar recap"

    publish_at = page.evaluate("""() => { const d = new Date(Date.now() + 6000);
        const p = n => String(n).padStart(2, '0');
        return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T"""
                               "${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`; }")
    page.get_by_label("Publish at").fill(publish_at)
    page.get_by_role("button", name="Schedule").click()
    flashes = page.locator(".flashes")
    flashes.wait_for()
    assert "Scheduled for" in flashes.inner_text(), flashes.inner_text()
    visitor = page.context.browser.new_context().new_page()
    assert visitor.goto(f"{live_server}/blog/webinar-recap").status == 404
    clock.advance(seconds=6.5)  # the publication time comes
    response = visitor.goto(f"{live_server}/blog/webinar-recap")
    assert response.status == 200 and "Scores need" in visitor.content()
    visitor.context.close()


def test_owner_turns_a_plugin_on_configures_it_and_turns_it_off(page, live_server, app):
    sign_in(page, live_server, app, "owner")
    site = page.context.browser.new_context().new_page()
    assert site.goto(f"{live_server}/demo-widget/").status == 404
    page.get_by_role("link", name="Plugins").click()
    page.get_by_role("button", name="Enable Demo widget").click()
    page.get_by_text("Demo widget is on.").wait_for()
    site.goto(f"{live_server}/demo-widget/")
    assert "Hello from the widget" in site.content()
    page.get_by_role("link", name="Settings of Demo widget").click()
    page.get_by_label("Greeting").fill("Welcome")
    page.get_by_role("button", name="Save settings").click()
    page.get_by_text("Settings of Demo widget saved.").wait_for()
    site.goto(f"{live_server}/demo-widget/")
    assert "Welcome from the widget" in site.content()
    page.get_by_role("link", name="Widget report").click()  # its admin page, in the admin layout
    page.get_by_role("heading", name="Widget report").wait_for()
    page.get_by_role("link", name="Plugins").click()
    page.get_by_role("button", name="Disable Demo widget").click()
    page.get_by_text("Demo widget is off.").wait_for()
    assert site.goto(f"{live_server}/demo-widget/").status == 404
    assert page.goto(f"{live_server}/admin/demo-widget/").status == 404
    site.context.close()


def test_viewer_reads_but_cannot_edit(page, live_server, app):
    from tests.forms_support import EBOOK, post
    post(app.test_client(), "ebook", EBOOK)
    sign_in(page, live_server, app, "viewer")
    assert page.get_by_role("heading", name="Dashboard").is_visible()
    nav = page.get_by_role("navigation", name="Admin")
    assert nav.get_by_role("link", name="Pages & posts").count() == 0
    assert nav.get_by_role("link", name="Plugins").count() == 0
    nav.get_by_role("link", name="Contacts").click()
    page.get_by_role("link", name="Jane").click()
    page.get_by_role("heading", name="Activity").wait_for()
    assert page.get_by_role("button", name="Merge into this contact").count() == 0
    assert page.get_by_role("button", name="Erase personal data").count() == 0
    contact_url = page.url
    statuses = page.evaluate("""async (paths) => {
        const token = document.querySelector('meta[name=csrf-token]').content;
        const out = [];
        for (const path of paths) {
            const body = new URLSearchParams({csrf_token: token, other: 'x', confirm: 'erase',
                                              kind: 'post'});
            out.push((await fetch(path, {method: 'POST', body})).status);
        }
        return out; }""", [contact_url + "/erase", contact_url + "/merge", "/admin/content/new",
                           "/admin/plugins/demo_widget/enabled", "/admin/forms/new"])
    assert statuses == [403, 403, 403, 403, 403]
    assert page.goto(f"{live_server}/admin/content").status == 403


def test_script_payload_from_a_public_form_is_shown_as_text(page, live_server, app):
    payload = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
    page.goto(f"{live_server}/forms/ebook")
    form = page.locator("form.magnet-form, form[action*='/forms/ebook']").first
    form.locator("input[name=email]").fill("mal@example.com")
    form.locator("input[name=first_name]").fill(payload)
    for select in form.locator("select").all():
        select.select_option(index=1)
    for group in {name for name in form.locator("input[type=radio]").evaluate_all(
            "els => els.map(e => e.name)")}:
        form.locator(f"input[type=radio][name={group}]").first.check()
    form.locator("input[name=consent]").check()
    with page.expect_response(lambda r: r.request.method == "POST"
                              and "/forms/ebook" in r.url) as sent:
        form.locator("button[type=submit]").click()
    assert sent.value.status in (200, 303), sent.value.text()
    sign_in(page, live_server, app, "viewer")
    page.goto(f"{live_server}/admin/contacts?q=mal@")
    page.get_by_role("link", name=payload).click()
    page.get_by_role("heading", name="Activity").wait_for()
    assert page.get_by_text(payload).first.is_visible()
    assert page.locator("main img").count() == 0 and page.evaluate("window.pwned") is None


def test_text_typed_while_the_server_is_unreachable_survives_a_closed_tab(page, live_server, app):
    sign_in(page, live_server, app, "editor")
    page.goto(f"{live_server}/admin/content")
    page.get_by_role("button", name="New post").click()
    page.wait_for_url("**/admin/content/*")
    editor_url = page.url
    page.route("**/autosave", lambda route: route.abort())  # the network is down
    page.locator("#body").fill("Written on a train without signal.")
    page.get_by_text("Not saved yet").wait_for(timeout=8000)
    page.evaluate("navigator.sendBeacon = () => false")  # nor does the last-moment send work
    page.close()

    page = page.context.new_page()
    page.goto(editor_url)
    assert page.locator("#body").input_value() == "Written on a train without signal."
    page.get_by_text("Draft autosaved").wait_for(timeout=8000)  # and now it reaches the server
    fresh = page.context.browser.new_context()
    try:
        other = fresh.new_page()
        sign_in(other, live_server, app, "owner")
        other.goto(editor_url)
        assert other.locator("#body").input_value() == ""  # autosaves are per person...
    finally:
        fresh.close()
    page.goto(editor_url)
    page.evaluate("localStorage.clear()")
    page.reload()
    # ...kept by the server
    assert page.locator("#body").input_value() == "Written on a train without signal."


def test_signing_out_forgets_the_text_kept_in_this_browser(page, live_server, app):
    """The browser may be shared: what autosave kept locally goes with the person."""
    sign_in(page, live_server, app, "editor")
    page.goto(f"{live_server}/admin/content")
    page.get_by_role("button", name="New post").click()
    page.wait_for_url("**/admin/content/*")
    page.route("**/autosave", lambda route: route.abort())  # kept locally only
    page.locator("#body").fill("Notes nobody else should read.")
    page.get_by_text("Not saved yet").wait_for(timeout=8000)
    assert "Notes nobody else" in page.evaluate("JSON.stringify(localStorage)")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/auth/login**")
    assert "Notes nobody else" not in page.evaluate("JSON.stringify(localStorage)")


def test_a_page_holding_a_form_can_be_saved_after_a_reload(page, live_server, app):
    """The preview shows the page's form ([form newsletter], whose email is required) inside
    the editor's own form: its fields must neither block saving nor be sent with it."""
    sign_in(page, live_server, app, "editor")
    page.get_by_role("link", name="Pages & posts").click()
    page.get_by_role("button", name="New post").click()
    page.wait_for_url("**/admin/content/*")
    page.get_by_label("Title", exact=True).fill("Join us")
    page.locator("#body").fill("Sign up below.\n\n[form newsletter]")
    page.locator("#preview input[name=email]").wait_for()
    page.get_by_role("button", name="Publish").click()
    page.locator(".flashes").wait_for()
    page.reload()  # the form is now in the page as served, not put in by the live preview
    page.get_by_role("button", name="Unpublish").click()
    flashes = page.locator(".flashes")
    flashes.wait_for()
    assert "Unpublished" in flashes.inner_text() or "draft" in flashes.inner_text().lower()
