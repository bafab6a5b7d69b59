"""Menus (main and footer): set up from the demo's `nav:` pages, edited in the admin, shown by
the theme, refreshed in the page cache; and the editor's "Add to main menu"."""
from __future__ import annotations

import re
import shutil

import pytest

from tests.admin_helpers import signed_in, token_for
from tests.content_helpers import load_demo


def _nav(html: str, name: str) -> list[str]:
    """The link texts of the `<nav aria-label=name>`, nested ones included, in order."""
    block = re.search(rf'<nav[^>]*aria-label="{name}"[^>]*>(.*?)</nav>', html, re.S).group(1)
    return [re.sub(r"<[^>]+>", "", text).strip() for text in re.findall(r"<a [^>]*>(.*?)</a>",
                                                                           block, re.S)]


def _menu(app, name):
    from engine.content import menus
    with app.app_context():
        return [(e.label, e.url, [(c.label, c.url) for c in e.children])
                for e in menus.entries(name)]


@pytest.mark.both_backends
def test_demo_menus_come_from_nav_and_the_theme_shows_them(app):
    load_demo(app)
    expected = [("Pricing", "/pricing", []), ("Webinar", "/webinar", []), ("About", "/about", [])]
    assert _menu(app, "main") == expected and _menu(app, "footer") == expected
    html = app.test_client().get("/blog").get_data(as_text=True)
    assert _nav(html, "Main") == ["Pricing", "Webinar", "About", "Blog"]
    assert _nav(html, "Footer") == ["Pricing", "Webinar", "About", "Blog", "RSS feed"]
    with app.app_context():  # a second sync changes nothing
        from engine.content import sync
        report = sync.sync(app.config["CONTENT_PATH"])
        assert not [name for name in report.created if name.startswith("menu")]
    assert _menu(app, "main") == expected


def test_editor_builds_a_menu_and_visitors_see_it_at_once(app):
    from engine.content import menus, service
    load_demo(app)
    with app.app_context():
        draft = service.create_item("page", "Careers", body="Soon").id
    editor = signed_in(app, "editor")
    token = token_for(editor, "/admin/menus")
    visitor = app.test_client()
    assert "Partners" not in visitor.get("/").get_data(as_text=True)  # now cached

    refused = editor.post("/admin/menus/main/add", data={
        "csrf_token": token, "kind": "link", "url": "javascript:alert(1)", "label": "Evil"},
        follow_redirects=True).get_data(as_text=True)
    assert "Not added: A link must start with http:// or https://" in refused
    assert len(_menu(app, "main")) == 3

    editor.post("/admin/menus/main/add", data={
        "csrf_token": token, "kind": "link", "url": "https://partners.example/", "page": "1",
        "label": "Partners <b>", "parent": ""})
    editor.post("/admin/menus/main/add", data={
        "csrf_token": token, "kind": "page", "page": str(draft), "label": ""})
    with app.app_context():
        rows = {r.shown_label: r.row for r in menus.editor_rows("main")}
        hidden = {r.shown_label: r.hidden_because for r in menus.editor_rows("main")}
    assert hidden["Careers"] == "not published"  # listed for the editor, not shown
    link = rows["Partners <b>"].id
    editor.post(f"/admin/menus/items/{link}/indent", data={"csrf_token": token})
    editor.post(f"/admin/menus/items/{link}/label", data={"csrf_token": token,
                                                          "label": "Our partners"})
    main = _menu(app, "main")
    assert main[-1] == ("About", "/about", [("Our partners", "https://partners.example/")])
    html = visitor.get("/").get_data(as_text=True)  # the cached copy went with the change
    assert _nav(html, "Main") == ["Pricing", "Webinar", "About", "Our partners", "Blog"]
    assert 'class="has-children"' in html and 'class="submenu"' in html

    # One level only; an unknown menu or action is a 404; moving reorders.
    nested = editor.post(f"/admin/menus/items/{link}/indent", data={"csrf_token": token},
                         follow_redirects=True).get_data(as_text=True)
    assert "Menus nest one level only" in nested
    assert editor.post("/admin/menus/sidebar/add", data={"csrf_token": token}).status_code == 404
    editor.post(f"/admin/menus/items/{rows['Pricing'].id}/down", data={"csrf_token": token})
    assert [e[0] for e in _menu(app, "main")] == ["Webinar", "Pricing", "About"]
    with app.app_context():
        service.publish(draft)
    assert [e[0] for e in _menu(app, "main")] == ["Webinar", "Pricing", "About", "Careers"]
    editor.post(f"/admin/menus/items/{rows['About'].id}/remove", data={"csrf_token": token})
    assert [e[0] for e in _menu(app, "main")] == ["Webinar", "Pricing", "Careers"]
    assert _menu(app, "footer")[0][0] == "Pricing"  # the other menu is untouched
    with app.app_context():
        from engine.audit import AuditEntry
        from engine.db import db
        entry = db.session.scalars(db.select(AuditEntry).where(
            AuditEntry.action == "menu.remove")).one()
        assert entry.details["old"][2:] == ["About", "  Our partners", "Careers"]
        assert entry.details["new"] == ["Webinar", "Pricing", "Careers"]
    viewer = signed_in(app, "viewer")
    assert viewer.get("/admin/menus").status_code == 403


def test_a_menu_change_that_changes_nothing_is_not_audited(app):
    from engine.audit import AuditEntry
    from engine.content import menus
    from engine.db import db
    load_demo(app)
    editor = signed_in(app, "editor")
    token = token_for(editor, "/admin/menus")
    with app.app_context():
        first = menus.editor_rows("main")[0].row.id
    moved = editor.post(f"/admin/menus/items/{first}/up", data={"csrf_token": token},
                        follow_redirects=True).get_data(as_text=True)
    same = editor.post(f"/admin/menus/items/{first}/label", data={"csrf_token": token,
                                                                  "label": ""},
                       follow_redirects=True).get_data(as_text=True)
    assert "Nothing changed." in moved and "Nothing changed." in same
    with app.app_context():
        assert not db.session.scalars(db.select(AuditEntry).where(
            AuditEntry.action.startswith("menu."))).all()


def test_every_menu_a_page_shows_costs_the_same_few_queries(app):
    from sqlalchemy import event

    from engine.content import menus
    from engine.db import db
    load_demo(app)
    with app.app_context():
        statements = []

        def seen(*args):
            if args[2].lstrip().upper().startswith("SELECT"):
                statements.append(args[2])
        event.listen(db.engine, "before_cursor_execute", seen)
        try:
            shown = menus.all_entries()
        finally:
            event.remove(db.engine, "before_cursor_execute", seen)
        assert [e.label for e in shown["main"]] == ["Pricing", "Webinar", "About"]
        assert len(statements) == 2  # the items of every menu, then the pages they link


def test_a_published_page_in_no_menu_is_offered_for_the_main_menu(app):
    load_demo(app)
    editor = signed_in(app, "editor")
    token = token_for(editor, "/admin/content")
    url = editor.post("/admin/content/new", data={"kind": "page", "csrf_token": token}
                      ).headers["Location"]
    editor.post(url, data={"csrf_token": token, "title": "Workshops", "slug": "draft-1",
                           "body": "Book one.", "action": "save"})
    assert "Add to main menu" not in editor.get(url).get_data(as_text=True)  # a draft
    editor.post(url, data={"csrf_token": token, "title": "Workshops", "slug": "workshops",
                           "body": "Book one.", "action": "publish"})
    page = editor.get(url).get_data(as_text=True)
    action = re.search(r'action="([^"]+/add-page/\d+)"', page).group(1)
    assert editor.post(action, data={}).status_code == 400  # CSRF
    editor.post(action, data={"csrf_token": token})
    assert _menu(app, "main")[-1] == ("Workshops", "/workshops", [])
    assert "Add to main menu" not in editor.get(url).get_data(as_text=True)
    from engine.content import service
    with app.app_context():
        home = service.get_item("page", "home")
    assert "/" not in [url for _label, url, _children in _menu(app, "main")]
    home_editor = editor.get(f"/admin/content/{home.id}").get_data(as_text=True)
    assert "Add to main menu" not in home_editor  # the site's name links to it already


def test_a_page_synced_with_nav_joins_the_main_menu_in_its_place(app, tmp_path):
    folder = tmp_path / "content"
    shutil.copytree(app.config["CONTENT_PATH"], folder,
                    ignore=shutil.ignore_patterns("forms", "assets"))
    from engine.content import sync
    with app.app_context():
        sync.sync(folder)
    (folder / "pages" / "team.md").write_text("---\ntitle: Our team\nnav: 1\nnav_label: Team\n"
                                              "---\nHello.\n")
    with app.app_context():
        assert sync.sync(folder).created == ["page team"]
    assert [e[0] for e in _menu(app, "main")] == ["Pricing", "Team", "Webinar", "About"]
    assert [e[0] for e in _menu(app, "footer")] == ["Pricing", "Webinar", "About"]


@pytest.mark.browser
def test_editor_publishes_a_page_and_adds_it_to_the_main_menu(app, live_server, page):
    from tests.admin_helpers import browser_signed_in
    load_demo(app)
    page.set_viewport_size({"width": 375, "height": 800})
    browser_signed_in(page, live_server, app, "editor@example.com", "editor")
    page.goto(f"{live_server}/admin/content")
    page.get_by_role("button", name="New page").click()
    page.wait_for_url("**/admin/content/*")
    page.get_by_label("Title", exact=True).fill("Workshops")
    page.locator("#body").fill("Book a half-day workshop.")
    page.get_by_role("button", name="Publish now").click()
    page.get_by_text("Published.").wait_for()
    page.get_by_role("button", name="Add to main menu").click()
    page.get_by_text("is in the main menu now").wait_for()
    assert page.get_by_role("button", name="Add to main menu").count() == 0

    page.goto(f"{live_server}/admin/menus")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.goto(f"{live_server}/blog")
    main_nav = page.get_by_role("navigation", name="Main")
    main_nav.get_by_role("link", name="Workshops").click()
    page.wait_for_url(f"{live_server}/workshops")
    assert page.get_by_role("heading", level=1).inner_text() == "Workshops"
