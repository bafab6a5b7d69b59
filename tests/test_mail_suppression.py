"""The suppression list: scopes, the admin page (roles, import, export, removal), the CLI
import and GDPR."""
from __future__ import annotations

import io

from sqlalchemy import select

from engine.audit import AuditEntry
from engine.contacts import gdpr
from engine.contacts import service as contacts
from engine.db import db, write
from engine.mail import suppression
from engine.mail.models import Bounce, Mailing, MailSend, Suppression
from tests.admin_helpers import signed_in, token_for

LIST = "/admin/mail/suppressions"
MAILCHIMP = (
    '"Email Address","First Name","Last Name","MEMBER_RATING","UNSUB_TIME","UNSUB_REASON"\n'
    '"Ann@Example.com","Ann","A",2,"2024-01-02 10:00:00","No longer interested"\n'
    '"bob@example.com","Bob","B",2,"2024-01-03 10:00:00",""\n'
    '"not an address","X","Y",1,"",""\n'
    '"ann@example.com","Ann","A",2,"",""\n'
    '"","","",1,"",""\n'
    '"old@example.com","Old","O",1,"",""\n'
)


def _entries(app) -> dict[str, tuple[str, str]]:
    with app.app_context():
        return {r.email: (r.reason, r.scope) for r in db.session.scalars(select(Suppression))}


def test_scopes_let_transactional_mail_past_an_unsubscribe_never_past_a_bounce(app, clock):
    with app.app_context(), write():
        suppression.suppress("unsub@example.com", "unsubscribed")
        suppression.suppress("dead@example.com", "hard_bounce")
        suppression.suppress("angry@example.com", "unsubscribed")
        suppression.suppress("angry@example.com", "complaint")  # only ever stronger
        suppression.suppress("angry@example.com", "unsubscribed")
    everyone = ["Unsub@example.com", "dead@example.com", "angry@example.com", "ok@example.com"]
    with app.app_context():
        assert suppression.blocked(everyone, marketing=False) == {"dead@example.com",
                                                                  "angry@example.com"}
        assert suppression.blocked(everyone, marketing=True) == {
            "unsub@example.com", "dead@example.com", "angry@example.com"}
    assert _entries(app)["angry@example.com"] == ("complaint", "all")


def _upload(client, data: bytes, mode: str, name="unsubscribed_members.csv", reason=None):
    form = {"csrf_token": token_for(client, LIST), "mode": mode,
            "file": (io.BytesIO(data), name)}
    if reason:
        form["reason"] = reason
    return client.post(LIST + "/import", data=form, content_type="multipart/form-data")


def test_csv_import_of_a_mailchimp_export_with_a_dry_run_and_bad_rows(app):
    with app.app_context(), write():
        suppression.suppress("old@example.com", "unsubscribed")
    editor = signed_in(app, "editor")

    checked = _upload(editor, MAILCHIMP.encode(), "check")
    html = checked.get_data(as_text=True)
    assert checked.status_code == 200 and "Dry run" in html
    assert "“Email Address”" in html and "3 unsubscribed" in html  # ann once, bob, old
    assert ">2</p><p class=\"stat-label\">would be added" in html
    assert "<td>4</td><td>&#39;not an address&#39;" in html  # the line number and why
    assert "<td>6</td><td>no email address" in html
    assert set(_entries(app)) == {"old@example.com"}  # a dry run changes nothing

    imported = _upload(editor, MAILCHIMP.encode(), "import")
    assert imported.status_code == 200
    assert _entries(app) == {e: ("unsubscribed", "marketing") for e in
                             ("ann@example.com", "bob@example.com", "old@example.com")}

    bounced = (b"email,status\ncarl@example.com,cleaned\ndora@example.com,spam\n"
               b"x@example.com,subscribed\n")
    html = _upload(editor, bounced, "import", name="mautic.csv").get_data(as_text=True)
    assert "unknown reason &#39;subscribed&#39;" in html and "<td>4</td>" in html
    assert _entries(app)["carl@example.com"] == ("hard_bounce", "all")
    assert _entries(app)["dora@example.com"] == ("complaint", "all")

    for junk in (b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR", b"Name,Phone\nAnn,123\n"):
        refused = _upload(editor, junk, "import", name="file.csv")
        assert refused.status_code == 400
        assert "Nothing was changed" in refused.get_data(as_text=True)
    assert len(_entries(app)) == 5
    with app.app_context():
        actions = list(db.session.scalars(select(AuditEntry.action)))
    assert actions.count("mail.suppression.import") == 2


def test_cli_import_dry_run_then_import(app, tmp_path):
    export = tmp_path / "hubspot.csv"
    export.write_text("Email,Reason\nzed@example.com,bounced\nbad,\n")
    runner = app.test_cli_runner()
    dry = runner.invoke(args=["mail", "suppress-import", str(export), "--dry-run"])
    assert dry.exit_code == 0 and "1 would be added" in dry.output and "line 3" in dry.output
    assert _entries(app) == {}
    done = runner.invoke(args=["mail", "suppress-import", str(export)])
    assert done.exit_code == 0 and "Added 1" in done.output
    assert _entries(app) == {"zed@example.com": ("hard_bounce", "all")}


def test_roles_search_removal_with_confirmation_and_export(app):
    with app.app_context(), write():
        suppression.suppress("dead@example.com", "hard_bounce")
        for n in range(55):
            suppression.suppress(f"u{n:02}@example.com", "unsubscribed")
    viewer, editor, owner = (signed_in(app, role) for role in ("viewer", "editor", "owner"))
    page = viewer.get(LIST)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "u54@example.com" in html and "Next 50" in html
    assert "Remove" not in html and "Add to the list" not in html
    next_page = viewer.get(LIST + "?after=" + html.split("after=")[1].split('"')[0])
    assert "dead@example.com" in next_page.get_data(as_text=True)
    found = viewer.get(LIST + "?q=DEAD@&reason=hard_bounce").get_data(as_text=True)
    assert "dead@example.com" in found and "u01@example.com" not in found

    form = {"email": "Hand@Example.com", "scope": "all", "note": "asked by phone"}
    assert viewer.post(LIST, data={**form, "csrf_token": token_for(viewer)}).status_code == 403
    assert editor.post(LIST, data=form).status_code == 400  # no CSRF token
    assert editor.post(LIST, data={**form, "csrf_token": token_for(editor)}).status_code == 302
    assert _entries(app)["hand@example.com"] == ("manual", "all")

    with app.app_context():
        dead = db.session.scalar(select(Suppression.id).where(
            Suppression.email == "dead@example.com"))
    remove = f"{LIST}/{dead}/remove"
    assert editor.post(remove, data={"csrf_token": token_for(editor)}).status_code == 403
    asked = owner.post(remove, data={"csrf_token": token_for(owner)})
    assert asked.status_code == 200 and "Remove it" in asked.get_data(as_text=True)
    assert "dead@example.com" in _entries(app)  # not yet
    gone = owner.post(remove, data={"csrf_token": token_for(owner), "confirmed": "yes"})
    assert gone.status_code == 302 and "dead@example.com" not in _entries(app)

    exported = editor.post(LIST + ".csv", data={"csrf_token": token_for(editor)})
    lines = exported.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0] == "email,reason,scope,since,until,note" and len(lines) == 57
    with app.app_context():
        actions = sorted(db.session.scalars(select(AuditEntry.action).where(
            AuditEntry.action.startswith("mail."))))
    assert actions == ["mail.suppression.add", "mail.suppression.export",
                       "mail.suppression.remove"]


def test_gdpr_exports_and_erases_the_persons_mail_data(app):
    with app.app_context(), write() as session:
        contact, _, _ = contacts.upsert("gone@example.com", {})
        mailing = Mailing(key="newsletter:7")
        session.add(mailing)
        session.flush()
        session.add(MailSend(mailing_id=mailing.id, contact_id=contact.id,
                             email="gone@example.com", status="sent"))
        session.add(Bounce(email="gone@example.com", contact_id=contact.id, kind="hard",
                           source="smtp", diagnostic="550 gone@example.com unknown"))
        suppression.suppress("gone@example.com", "hard_bounce")
        contact_id = contact.id
    with app.app_context():
        exported = gdpr.export_contact(contact_id)
        data = exported["email_delivery"]
        assert data["suppression"][0]["reason"] == "hard_bounce"
        assert data["sends"][0]["mailing"] == "newsletter:7"
        assert exported["mail_bounces"][0]["kind"] == "hard"
        gdpr.erase_contact(contact_id, actor="test")
    with app.app_context():
        assert db.session.scalar(select(MailSend.email)) == ""
        assert db.session.scalar(select(Bounce.diagnostic)) is None  # deleted
        assert db.session.scalar(select(Suppression.email)).startswith("sha256:")
        assert suppression.blocked(["gone@example.com"], marketing=False) == {"gone@example.com"}
