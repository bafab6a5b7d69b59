"""Admin → Lists: every list with its counts, a list's members by status a page at a time, and
for editors adding, removing and importing; viewers only look; bad input changes nothing.
Few apps: each test walks through one person's visit."""
from __future__ import annotations

import io

from sqlalchemy import select

from engine.audit import AuditEntry
from engine.contacts import lists, service, store
from engine.contacts.models import Contact, Subscription
from engine.db import db, write
from engine.events.models import Activity
from engine.forms import service as forms
from tests.admin_helpers import signed_in, token_for

WEBINAR_FORM = {"slug": "webinar", "title": "Webinar", "lists": ["webinar-guests"],
                "fields": [{"name": "email", "type": "email", "label": "Email"}]}


def people_on_customers(app):
    """ann subscribed, <b>pat</b> waiting to confirm, lou unsubscribed; a form names a list
    nobody is on yet."""
    with app.app_context(), write():
        ann, _, _ = service.upsert("ann@example.com", {"first_name": "Ann"})
        pat, _, _ = service.upsert("pat@example.com", {"first_name": "<b>Pat</b>"})
        lou, _, _ = service.upsert("lou@example.com", {})
        service.subscribe(ann, "customers", source="form:shop")
        service.subscribe(pat, "customers", source="form:shop", double_opt_in=True)
        service.subscribe(lou, "customers", source="form:shop")
        store.unsubscribe(lou.id, ["customers"])
    with app.app_context():
        forms.save(WEBINAR_FORM)


def statuses(app, slug):
    with app.app_context():
        return dict(db.session.execute(
            select(Contact.email, Subscription.status).join(Subscription)
            .where(Subscription.list_slug == slug)).all())


def upload(token, text, mode, name="people.csv"):
    return {"csrf_token": token, "mode": mode, "file": (io.BytesIO(text.encode()), name)}


def test_viewers_see_lists_and_members_but_change_nothing(app, monkeypatch):
    people_on_customers(app)
    viewer = signed_in(app, "viewer")
    nav = viewer.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/lists">Lists</a>' in nav
    index = viewer.get("/admin/lists").get_data(as_text=True)
    assert "customers" in index and "webinar-guests" in index and "webinar</span>" in index
    assert "Start a new list" not in index
    page = viewer.get("/admin/lists/customers")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'href="/admin/contacts/' in html and "ann@example.com" in html
    assert "&lt;b&gt;Pat&lt;/b&gt;" in html and "<b>Pat</b>" not in html
    assert "Add someone" not in html and "Import a CSV file" not in html and "Remove" not in html
    token = token_for(viewer, "/admin/lists")
    for path, data in (("/admin/lists/customers/add", {"email": "x@example.com"}),
                       ("/admin/lists/customers/remove", {"contact_id": "1"}),
                       ("/admin/lists/customers/import", upload(token, "email\nx@e.com\n",
                                                                "import"))):
        assert viewer.post(path, data={"csrf_token": token, **data}).status_code == 403, path
    assert viewer.get("/admin/lists/new?slug=news").status_code == 403
    assert statuses(app, "customers") == {"ann@example.com": "subscribed",
                                          "pat@example.com": "pending",
                                          "lou@example.com": "unsubscribed"}

    # the counts, members by status, a page at a time
    row = index[index.index(">customers<"):index.index(">webinar-guests<")]
    assert [cell.split("<")[0] for cell in row.split('class="num">')[1:]][1:] == ["1", "1"]
    pending = viewer.get("/admin/lists/customers?status=pending").get_data(as_text=True)
    assert "pat@example.com" in pending and "ann@example.com" not in pending
    assert "Waiting to confirm</span>" in pending
    monkeypatch.setattr(lists, "PER_PAGE", 2)
    first = viewer.get("/admin/lists/customers").get_data(as_text=True)
    assert "lou@example.com" in first and "pat@example.com" in first  # newest first
    assert "ann@example.com" not in first and 'rel="next"' in first
    cursor = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    second = viewer.get(cursor).get_data(as_text=True)
    assert "ann@example.com" in second and "pat@example.com" not in second
    assert 'rel="next"' not in second
    assert viewer.get("/admin/lists/Not%20A%20List").status_code == 404
    empty = viewer.get("/admin/lists/webinar-guests").get_data(as_text=True)
    assert "Nobody is on this list yet." in empty and "/admin/forms/webinar" in empty


def test_editors_add_remove_and_refuse_what_cannot_be(app):
    people_on_customers(app)
    editor = signed_in(app, "editor")
    token = token_for(editor, "/admin/lists/customers")
    add = "/admin/lists/customers/add"

    assert editor.post(add, data={"email": "new@example.com"}).status_code == 400  # no CSRF
    added = editor.post(add, data={"csrf_token": token, "email": " New@Example.com "},
                        follow_redirects=True)
    assert "new@example.com is subscribed to this list (a new contact)." in added.get_data(
        as_text=True)
    confirmed = editor.post(add, data={"csrf_token": token, "email": "pat@example.com"})
    assert confirmed.status_code == 302
    with app.app_context():
        new = service.find_by_email("new@example.com")
        sub = db.session.scalar(select(Subscription).where(Subscription.contact_id == new.id))
        assert (new.consent, sub.status, sub.source) == (
            "unknown", "subscribed", "admin:editor@example.com")
        assert sub.confirmed_at is not None

    before = statuses(app, "customers")
    for email, message in (("not an address", "Enter a valid email address"),
                           ("lou@example.com", "lou@example.com unsubscribed from this list")):
        refused = editor.post(add, data={"csrf_token": token, "email": email})
        html = refused.get_data(as_text=True)
        assert refused.status_code == 400 and message in html, html
    assert statuses(app, "customers") == before
    assert before["pat@example.com"] == "subscribed"

    bad_name = editor.get("/admin/lists/new?slug=Big+News!")
    assert bad_name.status_code == 400
    assert "lowercase letters, digits and hyphens" in bad_name.get_data(as_text=True)
    assert editor.get("/admin/lists/new?slug=big-news").headers["Location"] \
        == "/admin/lists/big-news"
    assert "A new list" in editor.get("/admin/lists/big-news").get_data(as_text=True)
    assert editor.post("/admin/lists/Big_News/add", data={
        "csrf_token": token, "email": "ann@example.com"}).status_code == 404
    editor.post("/admin/lists/big-news/add", data={"csrf_token": token,
                                                   "email": "ann@example.com"})
    assert statuses(app, "big-news") == {"ann@example.com": "subscribed"}

    with app.app_context():
        ann = service.find_by_email("ann@example.com").id
    removed = editor.post("/admin/lists/customers/remove",
                          data={"csrf_token": token, "contact_id": str(ann)},
                          follow_redirects=True)
    assert "ann@example.com is off this list" in removed.get_data(as_text=True)
    assert statuses(app, "customers")["ann@example.com"] == "unsubscribed"
    assert statuses(app, "big-news")["ann@example.com"] == "subscribed"  # the other list stays
    again = editor.post("/admin/lists/customers/remove",
                        data={"csrf_token": token, "contact_id": str(ann)}, follow_redirects=True)
    assert "was not on this list; nothing changed." in again.get_data(as_text=True)
    with app.app_context():
        left = db.session.scalars(select(Activity.properties).where(
            Activity.contact_id == ann, Activity.type == "list_left")).all()
        assert left == [{"list": "customers", "status": "unsubscribed"}]
        assert [e.action for e in db.session.scalars(
            select(AuditEntry).where(AuditEntry.action.like("list.%"))
            .order_by(AuditEntry.id))] == ["list.add", "list.add", "list.add", "list.remove"]


def test_editors_import_a_file_to_a_list(app):
    people_on_customers(app)
    editor = signed_in(app, "editor")
    token = token_for(editor, "/admin/lists/customers")
    path = "/admin/lists/customers/import"
    csv_text = ("E-mail,First Name\nann@example.com,Ann\nzoe@example.com,Zoe\n"
                "lou@example.com,Lou\nbroken,Nope\n")

    before = statuses(app, "customers")
    dry = editor.post(path, data=upload(token, csv_text, "check"))
    html = dry.get_data(as_text=True)
    assert dry.status_code == 200 and "Dry run of “people.csv” to “customers”" in html
    assert '<p class="stat">1</p><p class="stat-label">would join the list' in html
    assert "<li>lou@example.com</li>" in html and "broken" not in html.split("Rejected")[0]
    assert statuses(app, "customers") == before

    for text, message in (("name,phone\nJane,1\n", "The file has no email column"),
                          ("email\n\xe9\n", "not UTF-8")):
        data = upload(token, "", "import")
        data["file"] = (io.BytesIO(text.encode("latin-1")), "bad.csv")
        refused = editor.post(path, data=data)
        assert refused.status_code == 400 and message in refused.get_data(as_text=True)
    assert editor.post(path, data={"csrf_token": token, "mode": "import"}).status_code == 400
    app.config[lists.UPLOAD_CONFIG] = 200
    big = editor.post(path, data=upload(token, "email\n" + "a@example.com\n" * 50, "import"))
    assert big.status_code == 413 and "larger than" in big.get_data(as_text=True)
    app.config[lists.UPLOAD_CONFIG] = lists.UPLOAD_BYTES
    assert statuses(app, "customers") == before

    done = editor.post(path, data=upload(token, csv_text, "import"))
    html = done.get_data(as_text=True)
    assert done.status_code == 200 and "Imported “people.csv” to “customers”" in html
    assert "Line</th>" in html and ">5</td>" in html  # the rejected row, by its line
    assert statuses(app, "customers") == {**before, "zoe@example.com": "subscribed"}
    with app.app_context():
        zoe = service.find_by_email("zoe@example.com")
        assert (zoe.first_name, zoe.consent) == ("Zoe", "granted")
        assert zoe.consent_proof["form"] == "import:people.csv"
        assert "by editor@example.com in the admin" in zoe.consent_proof["text"]
        assert service.find_by_email("lou@example.com").consent == "unknown"

    new_list = editor.post("/admin/lists/product-news/import",
                           data=upload(token, "email\nzoe@example.com\n", "import"))
    assert new_list.status_code == 200
    assert statuses(app, "product-news") == {"zoe@example.com": "subscribed"}
    assert "product-news" in editor.get("/admin/lists").get_data(as_text=True)
