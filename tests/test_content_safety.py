"""Safety nets around pages and posts: the trash (and its purge), `noindex`, the template
choice, draft preview links, revisions side by side, and sync never duplicating an item edited
in the admin."""
from __future__ import annotations

import re
import shutil

import pytest
from werkzeug.datastructures import MultiDict

from tests.admin_helpers import form_as_shown, signed_in, token_for
from tests.content_helpers import load_demo


def _copy_demo(app, tmp_path):
    folder = tmp_path / "content"
    shutil.copytree(app.config["CONTENT_PATH"], folder,
                    ignore=shutil.ignore_patterns("forms", "assets"))
    return folder


@pytest.mark.both_backends
def test_trash_hides_keeps_the_slug_restores_and_is_purged_after_30_days(app, clock, tmp_path):
    from engine.content import hooks, menus, service, sync
    from engine.content.models import ContentItem
    from engine.db import db
    folder = _copy_demo(app, tmp_path)
    with app.app_context():
        sync.sync(folder)
    editor = signed_in(app, "editor")
    visitor = app.test_client()
    assert visitor.get("/about").status_code == 200
    with app.app_context():
        about = service.get_item("page", "about").id
    token = token_for(editor, f"/admin/content/{about}")
    editor.post(f"/admin/content/{about}/delete", data={"csrf_token": token})

    assert visitor.get("/about").status_code == 404
    assert "/about<" not in visitor.get("/sitemap.xml").get_data(as_text=True)
    assert "About" not in [e.label for e in _entries(app)]
    assert "/about" not in editor.get("/admin/content").get_data(as_text=True)
    trash = editor.get("/admin/content/trash").get_data(as_text=True)
    assert "About us" in trash and "Restore" in trash
    with app.app_context():
        with pytest.raises(service.ContentError, match="in the trash"):
            service.create_item("page", "About again", slug="about")
        report = sync.sync(folder, force=True)  # its file is still there: no second page
        assert report.conflicts == ["page about"] and "in the trash" in report.lines()[0]
        assert db.session.query(ContentItem).filter_by(slug="about").count() == 1
        assert menus.editor_rows("main")[2].hidden_because == "in the trash"

    editor.post(f"/admin/content/{about}/untrash", data={"csrf_token": token})
    assert visitor.get("/about").status_code == 200
    assert "About" in [e.label for e in _entries(app)]

    editor.post(f"/admin/content/{about}/delete", data={"csrf_token": token})
    clock.advance(days=29)
    with app.app_context():
        assert hooks.purge_trash() == 0  # the periodic job: not yet
    clock.advance(days=2)
    with app.app_context():
        assert hooks.purge_trash() == 1
        assert db.session.get(ContentItem, about) is None
        assert "About" not in [r.shown_label for r in menus.editor_rows("main")]
        assert service.create_item("page", "About", slug="about").slug == "about"


def test_deleting_a_page_for_good_keeps_the_menu_items_under_it(app):
    from engine.content import menus, service
    load_demo(app)
    with app.app_context():
        pricing = service.get_item("page", "pricing").id
        top = {r.shown_label: r.row.id for r in menus.editor_rows("main")}
        menus.add("main", "link", url="https://partners.example/", label="Partners",
                  parent_id=top["Pricing"])
        menus.add("main", "link", url="https://jobs.example/", label="Jobs",
                  parent_id=top["Pricing"])
        service.trash_item(pricing)
        service.delete_item(pricing)
        shown = [(r.shown_label, [c.shown_label for c in r.children])
                 for r in menus.editor_rows("main")]
    assert shown == [("Partners", []), ("Jobs", []), ("Webinar", []), ("About", [])]


def _entries(app):
    from engine.content import menus
    with app.app_context():
        return menus.entries("main")


@pytest.mark.both_backends
def test_noindex_round_trips_and_the_editor_sets_it_and_the_template(app, tmp_path):
    from engine.content import service, sync
    load_demo(app)
    with app.app_context():
        thanks = service.get_item("page", "thank-you")
        assert thanks.noindex and not service.get_item("page", "about").noindex
        thanks_id, thanks_body = thanks.id, thanks.body
        sync.export(tmp_path / "out")
    assert "noindex: true" in (tmp_path / "out" / "pages" / "thank-you.md").read_text()
    assert "noindex" not in (tmp_path / "out" / "pages" / "about.md").read_text()

    editor = signed_in(app, "editor")
    url = f"/admin/content/{thanks_id}"
    html = editor.get(url).get_data(as_text=True)
    assert '<option value="landing">' in html  # the theme's page-landing.html
    shown = form_as_shown(html, url)
    editor.post(url, data=MultiDict(shown + [("action", "save")]))
    with app.app_context():  # saved as shown: nothing changed
        again = service.get_item("page", "thank-you")
        assert again.noindex and again.template == "" and again.body == thanks_body
    untick = [(k, v) for k, v in shown if k not in ("noindex", "template")]
    editor.post(url, data=MultiDict(untick + [("template", "landing"), ("action", "save")]))
    with app.app_context():
        item = service.get_item("page", "thank-you")
        assert not item.noindex and item.template == "landing"
    sitemap = app.test_client().get("/sitemap.xml").get_data(as_text=True)
    assert "/thank-you<" in sitemap
    refused = editor.post(url, data=MultiDict(untick + [("template", "../evil"),
                                                    ("action", "save")]),
                          follow_redirects=True).get_data(as_text=True)
    assert "Not saved: the theme has no page template" in refused
    with app.app_context():
        assert service.get_item("page", "thank-you").template == "landing"


def test_preview_link_shows_a_banner_is_never_cached_and_never_indexed(app):
    from engine.content import service
    with app.app_context():
        item = service.create_item("page", "Launch", slug="launch", body="Coming **soon**")
    editor = signed_in(app, "editor")
    token = token_for(editor, f"/admin/content/{item.id}")
    editor.post(f"/admin/content/{item.id}/share", data={"csrf_token": token})
    link = re.search(r'href="https?://[^/"]+(/admin/preview/[^"]+)"',
                     editor.get(f"/admin/content/{item.id}").get_data(as_text=True)).group(1)
    visitor = app.test_client()
    for _ in range(2):
        shown = visitor.get(link)
        html = shown.get_data(as_text=True)
        assert shown.status_code == 200 and "<strong>soon</strong>" in html
        assert 'class="preview-banner"' in html and "not published yet" in html
        assert '<meta name="robots" content="noindex">' in html
        assert shown.headers["Cache-Control"] == "no-store"
        assert "X-Magnet-Cache" not in shown.headers
        assert visitor.get("/launch").status_code == 404  # the page cache never has it
    with app.app_context():
        service.trash_item(item.id)
    assert visitor.get(link).status_code == 404


def test_revisions_side_by_side_field_by_field_escaped(app):
    from engine.content import service
    with app.app_context():
        item = service.create_item("post", "Plan", body="one\ntwo\nthree")
        service.update_item(item.id, body="one\n2 <script>x</script>\nthree\nfour",
                            title="Plan B")
        first, second = sorted(service.list_revisions(item.id), key=lambda r: r.number)
    editor = signed_in(app, "editor")
    html = editor.get(f"/admin/content/{item.id}/revisions/{first.id}").get_data(as_text=True)
    assert "<h2>Title</h2>" in html and "<h2>Text</h2>" in html and "<h2>Slug</h2>" not in html
    body = re.search(r'data-field="body">(.*?)</table>', html, re.S).group(1)
    cells = [re.sub(r"\s+", " ", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", body,
                                                                re.S)]
    assert cells[:4] == ["1", "one", "1", "one"]
    assert cells[4:8] == ["2", "<del>two</del>", "2", "<ins>2 &lt;script&gt;x&lt;/script&gt;</ins>"]
    assert cells[-4:] == ["", "", "4", "<ins>four</ins>"]
    same = editor.get(f"/admin/content/{item.id}/revisions/{second.id}?against={second.id}")
    assert "The two are the same." in same.get_data(as_text=True)
    other = editor.get(f"/admin/content/{item.id}/revisions/{second.id}?against={first.id}")
    assert "compared with revision 1" in other.get_data(as_text=True)


@pytest.mark.both_backends
def test_sync_after_admin_edits_reports_conflicts_and_never_duplicates(app, tmp_path):
    from engine.content import service, sync
    from engine.content.models import ContentItem
    from engine.db import db
    folder = _copy_demo(app, tmp_path)
    with app.app_context():
        sync.sync(folder)
        count = db.session.query(ContentItem).count()
        # Slug changed in the admin, then sync: the file still says `pricing`.
        pricing = service.get_item("page", "pricing")
        service.update_item(pricing.id, slug="plans", actor="editor")
        report = sync.sync(folder)
        assert report.conflicts == ["page plans"] and "renamed to 'plans'" in report.lines()[0]
        assert service.get_item("page", "pricing") is None
        # Edited in the admin and in the file, then sync: both stay as they were.
        webinar = service.get_item("page", "webinar")
        service.update_item(webinar.id, body="Edited in the admin.", actor="editor")
        path = folder / "pages" / "webinar.md"
        path.write_text(path.read_text() + "\nEdited in the file.\n")
        report = sync.sync(folder)
        assert sorted(report.conflicts) == ["page plans", "page webinar"]
        assert service.get_item("page", "webinar").body == "Edited in the admin."
        assert "Edited in the file." in path.read_text()
        assert db.session.query(ContentItem).count() == count
