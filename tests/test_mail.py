"""The mail service: queued in the transaction, sent by a worker over SMTP or to a folder."""
from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import mail
from engine.db import db, write
from engine.mail.models import MailMessage

HTML = ('<html><head><style>p.lead { color: #c00; }</style></head>'
        '<body><p class="lead">Hello <b>Jane</b></p><p><a href="https://example.com/x">Read</a></p>'
        '</body></html>')


def test_mail_is_sent_over_smtp_by_a_worker(make_app, smtp_server, work):
    app = make_app(**smtp_server.config, MAIL_FROM="Site <site@example.com>")
    with app.app_context():
        with write():
            mail.send("jane@example.com", "Welcome", HTML, headers={"Reply-To": "help@example.com"})
        assert smtp_server.messages == []  # nothing before a worker runs
    work(app)
    assert len(smtp_server.messages) == 1
    message = smtp_server.messages[0]
    assert message["To"] == "jane@example.com" and message["Subject"] == "Welcome"
    assert message["Reply-To"] == "help@example.com"
    assert message["Date"].endswith("+0000")  # UTC said as such, not "-0000" (zone unknown)
    html = message.get_body(("html",)).get_content()
    assert 'style="color: #c00' in html and "<style>" not in html  # CSS inlined
    text = message.get_body(("plain",)).get_content()
    assert "Hello Jane" in text and "Read (https://example.com/x)" in text
    with app.app_context():
        row = db.session.scalar(select(MailMessage))
        assert row.status == "sent" and row.sent_at is not None
    work(app)  # a second run sends nothing again
    assert len(smtp_server.messages) == 1


def test_a_batch_uses_one_smtp_connection(make_app, smtp_server, work):
    app = make_app(**smtp_server.config)
    connections = []
    import smtplib
    original = smtplib.SMTP.connect

    def counting(self, *args, **kwargs):
        connections.append(args)
        return original(self, *args, **kwargs)

    smtplib.SMTP.connect = counting
    try:
        with app.app_context(), write():
            mail.send_many([{"to": f"r{i}@example.com", "subject": f"Hi {i}", "html": "<p>Hi</p>"}
                            for i in range(25)])
        work(app)
    finally:
        smtplib.SMTP.connect = original
    assert len(smtp_server.messages) == 25
    assert len(connections) == 1


@pytest.mark.parametrize("to,subject,headers", [
    ("jane@example.com\r\nBcc: everyone@example.com", "Hi", None),
    ("jane@example.com", "Hi\nBcc: everyone@example.com", None),
    ("jane@example.com", "Hi", {"X-Campaign": "a\r\nBcc: x@example.com"}),
    ("not an address", "Hi", None),
])
def test_header_injection_is_refused_and_nothing_is_queued(app, to, subject, headers):
    with app.app_context():
        with pytest.raises(ValueError), write():
            mail.send(to, subject, "<p>x</p>", headers=headers)
        assert db.session.scalar(select(MailMessage)) is None


def test_without_a_mail_host_messages_land_in_the_instance_folder(app, work):
    with app.app_context(), write():
        mail.send("dev@example.com", "Check me", "<p>Dev <script>alert(1)</script>sink</p>")
    work(app)
    files = list((Path(app.instance_path) / "mail").glob("*.eml"))
    assert len(files) == 1
    message = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert message["Subject"] == "Check me" and message["To"] == "dev@example.com"
    text = message.get_body(("plain",)).get_content()
    assert "Dev sink" in text and "alert" not in text


def test_smtp_permanent_failure_marks_the_message_failed(make_app, smtp_server, work):
    app = make_app(**smtp_server.config)

    async def refuse(server, session, envelope, address, rcpt_options):
        return "550 No such user" if address.startswith("gone@") else \
            (envelope.rcpt_tos.append(address) or "250 OK")
    smtp_server.handle_RCPT = refuse
    with app.app_context(), write():
        mail.send_many([{"to": "gone@example.com", "subject": "x", "html": "<p>x</p>"},
                        {"to": "here@example.com", "subject": "y", "html": "<p>y</p>"}])
    work(app)
    assert [m["To"] for m in smtp_server.messages] == ["here@example.com"]
    with app.app_context():
        statuses = dict(db.session.execute(select(MailMessage.to, MailMessage.status)).all())
    assert statuses == {"gone@example.com": "failed", "here@example.com": "sent"}


def test_the_text_part_keeps_lists_and_links():
    from engine.mail.service import html_to_text
    html = '<p>Read:</p>\n<ul>\n<li>One <a href="https://x.example/1">fix</a></li>\n<li>Two</li>\n</ul>'
    assert html_to_text(html) == "Read:\n\n- One fix (https://x.example/1)\n- Two\n"
