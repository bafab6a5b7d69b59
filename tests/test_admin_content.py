"""The content editor: drafts, live preview, autosave that survives, revisions, publishing,
scheduling, slug changes and shareable preview links."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.admin_helpers import csrf_token, signed_in, token_for


def _new_post(client) -> str:
    response = client.post("/admin/content/new",
                           data={"kind": "post", "csrf_token": token_for(client)})
    assert response.status_code == 302
    return response.headers["Location"]


def _item(app, item_id):
    from engine.content.models import ContentItem
    from engine.db import db
    with app.app_context():
        return db.session.get(ContentItem, item_id)


@pytest.mark.both_backends
def test_autosaved_text_comes_back_in_the_editor(app):
    editor = signed_in(app, "editor")
    url = _new_post(editor)
    item_id = int(url.rsplit("/", 1)[1])
    token = csrf_token(editor.get(url).get_data(as_text=True))
    response = editor.post(f"{url}/autosave", data={"csrf_token": token, "title": "Half written",
                                                    "body": "The *first* paragraph",
                                                    "tags": "a, b"})
    assert response.status_code == 200 and response.get_json()["ok"]
    assert _item(app, item_id).body == ""  # the item itself is untouched until saved
    page = editor.get(url).get_data(as_text=True)
    assert "The *first* paragraph</textarea>" in page and "were restored" in page
    assert 'value="Half written"' in page
    # Someone else editing the same item does not see this person's unsaved text.
    other = signed_in(app, "editor", "other@example.com")
    assert "The *first* paragraph" not in other.get(url).get_data(as_text=True)


@pytest.mark.both_backends
def test_save_makes_a_revision_and_clears_the_autosave(app):
    editor = signed_in(app, "editor")
    url = _new_post(editor)
    item_id = int(url.rsplit("/", 1)[1])
    token = token_for(editor, url)
    editor.post(f"{url}/autosave", data={"csrf_token": token, "title": "T", "body": "autosaved"})
    editor.post(url, data={"csrf_token": token, "title": "Launch notes", "slug": "draft-x",
                           "body": "Version one", "action": "save"})
    item = _item(app, item_id)
    assert (item.title == "Launch notes" and item.slug == "launch-notes"
            and item.body == "Version one")
    page = editor.get(url).get_data(as_text=True)
    assert "were restored" not in page and "Version one</textarea>" in page
    editor.post(url, data={"csrf_token": token, "title": "Launch notes", "slug": "launch-notes",
                           "body": "Version two", "action": "save"})
    from engine.content import service
    with app.app_context():
        revisions = service.list_revisions(item_id)
    assert [r.number for r in revisions] == [3, 2, 1]
    first_saved = revisions[1]
    diff = editor.get(f"{url}/revisions/{first_saved.id}").get_data(as_text=True)
    assert "<del>Version one</del>" in diff and "<ins>Version two</ins>" in diff
    editor.post(f"{url}/revisions/{first_saved.id}/restore", data={"csrf_token": token})
    assert _item(app, item_id).body == "Version one"


def test_live_preview_uses_the_sanitising_pipeline(app):
    editor = signed_in(app, "editor")
    token = token_for(editor)
    response = editor.post("/admin/content/preview", data={
        "csrf_token": token,
        "body": "# Hi\n\n<script>alert(1)</script><img src=x onerror=alert(1)>"})
    html = response.get_data(as_text=True)
    assert "<h1" in html and "Hi</h1>" in html
    assert "<script" not in html and "onerror" not in html


@pytest.mark.both_backends
def test_publish_unpublish_and_slug_change_with_redirect(app):
    editor = signed_in(app, "editor")
    url = _new_post(editor)
    token = token_for(editor, url)
    editor.post(url, data={"csrf_token": token, "title": "Spring sale", "slug": "spring-sale",
                           "body": "Everything must go", "action": "publish"})
    site = app.test_client()
    assert "Everything must go" in site.get("/blog/spring-sale").get_data(as_text=True)
    editor.post(url, data={"csrf_token": token, "title": "Spring sale", "slug": "spring-offers",
                           "body": "Everything must go", "action": "save"})
    moved = site.get("/blog/spring-sale")
    assert moved.status_code == 301 and moved.headers["Location"].endswith("/blog/spring-offers")
    editor.post(url, data={"csrf_token": token, "title": "Spring sale", "slug": "spring-offers",
                           "body": "Everything must go", "action": "unpublish"})
    assert site.get("/blog/spring-offers").status_code == 404


def test_scheduled_post_appears_at_its_time(app):
    import time

    from engine.db import utcnow
    editor = signed_in(app, "editor")
    url = _new_post(editor)
    item_id = int(url.rsplit("/", 1)[1])
    token = token_for(editor, url)
    when = (utcnow() + timedelta(seconds=3)).replace(microsecond=0)
    local = when - timedelta(hours=2)  # typed in a browser two hours behind UTC
    editor.post(url, data={"csrf_token": token, "title": "Later", "slug": "later", "body": "Soon",
                           "action": "schedule", "publish_at": local.strftime("%Y-%m-%dT%H:%M:%S"),
                           "tz_offset": "120"})
    item = _item(app, item_id)
    assert item.status == "scheduled" and item.published_at == when
    site = app.test_client()
    assert site.get("/blog/later").status_code == 404
    time.sleep(max(0.0, (when - utcnow()).total_seconds()) + 0.2)
    assert "Soon" in site.get("/blog/later").get_data(as_text=True)


def test_shareable_preview_link_shows_a_draft_and_expires(app):
    editor = signed_in(app, "editor")
    url = _new_post(editor)
    token = token_for(editor, url)
    editor.post(url, data={"csrf_token": token, "title": "Secret plan", "slug": "secret-plan",
                           "body": "Not yet public", "action": "save"})
    assert app.test_client().get("/blog/secret-plan").status_code == 404
    editor.post(f"{url}/share", data={"csrf_token": token})
    page = editor.get(url).get_data(as_text=True)
    link = re.search(r'href="https?://[^/"]+(/admin/preview/[^"]+)"', page).group(1)
    anonymous = app.test_client()
    shown = anonymous.get(link)
    assert shown.status_code == 200 and "Not yet public" in shown.get_data(as_text=True)
    assert shown.headers["Cache-Control"] == "no-store"
    assert anonymous.get(link[:-3] + "abc").status_code == 404
    from engine.admin.views import content
    lifetime = content.PREVIEW_LIFETIME
    content.PREVIEW_LIFETIME = -lifetime
    try:
        assert anonymous.get(link).status_code == 404
    finally:
        content.PREVIEW_LIFETIME = lifetime


def test_content_list_search_filter_and_sort(app):
    from engine.content import service
    with app.app_context():
        service.create_item("post", "Alpha post", body="x")
        service.create_item("page", "Beta page", body="y", status="published")
        service.create_item("post", "Gamma post", body="z", status="published")
    editor = signed_in(app, "editor")
    page = editor.get("/admin/content?q=alpha").get_data(as_text=True)
    assert "Alpha post" in page and "Gamma post" not in page
    page = editor.get("/admin/content?kind=post&status=published").get_data(as_text=True)
    assert "Gamma post" in page and "Alpha post" not in page and "Beta page" not in page
    page = editor.get("/admin/content?sort=title").get_data(as_text=True)
    assert page.index("Alpha post") < page.index("Beta page") < page.index("Gamma post")
