"""Bounces and complaints: DSN and ARF reports parsed from sample messages, the rules they
apply, and the three ways in (mailbox, SMTP receiver, ESP webhooks)."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from engine.contacts.models import Contact, Subscription
from engine.db import db, write
from engine.events.models import Activity
from engine.mail import suppression, tokens
from engine.mail.bounces import record_bounce
from engine.mail.bounces.intake import process_message
from engine.mail.bounces.parse import parse_report
from engine.mail.models import Bounce, Mailing, MailSend

SAMPLES = Path(__file__).parent / "mail_samples"


def sample(name: str, verp: str) -> bytes:
    return (SAMPLES / name).read_bytes().replace(b"{{verp}}", verp.encode())


def make_send(email: str = "jane@example.org", list_slug: str = "news") -> tuple[int, int]:
    """A contact subscribed to a list and a sent MailSend of a mailing to it."""
    with write() as session:
        contact = Contact(email=email)
        session.add(contact)
        session.flush()
        session.add(Subscription(contact_id=contact.id, list_slug=list_slug,
                                 status="subscribed"))
        mailing = session.scalar(select(Mailing).where(Mailing.key == "newsletter:1"))
        if mailing is None:
            mailing = Mailing(key="newsletter:1", list_slug=list_slug)
            session.add(mailing)
            session.flush()
        send = MailSend(mailing_id=mailing.id, contact_id=contact.id, email=email,
                        status="sent", message_id="<176276604.a1b2c3d4@example.com>")
        session.add(send)
        session.flush()
        return contact.id, send.id


def events_of(contact_id: int) -> list[tuple[str, dict]]:
    return [(e.type, e.properties) for e in db.session.scalars(
        select(Activity).where(Activity.contact_id == contact_id).order_by(Activity.id))]


@pytest.fixture
def app(make_app):
    app = make_app(MAIL_FROM="Example <news@example.com>")
    with app.app_context():
        yield app


def test_dsn_and_arf_samples_are_parsed(app):
    verp = tokens.bounce_address("s", 41)
    hard, = parse_report(sample("postfix-5.1.1.eml", verp))
    assert (hard.kind, hard.email, hard.verp) == ("hard", "jane@example.org", ("s", 41))
    assert "User unknown" in hard.diagnostic and hard.diagnostic.startswith("550 5.1.1")
    assert hard.message_id == "<176276604.a1b2c3d4@example.com>" and hard.external_id
    soft, = parse_report(sample("postfix-4.2.2-mailbox-full.eml", verp))
    assert (soft.kind, soft.email) == ("soft", "jane@example.org")
    assert soft.diagnostic == "452 4.2.2 Mailbox full"
    exchange, = parse_report(sample("exchange-5.1.10.eml", verp))
    assert (exchange.kind, exchange.email) == ("hard", "bob.smith@corp.example.net")
    assert "RESOLVER.ADR.RecipientNotFound" in exchange.diagnostic
    complaint, = parse_report(sample("arf-abuse-yahoo.eml", verp))
    assert (complaint.kind, complaint.verp) == ("complaint", ("s", 41))  # from the quoted copy
    assert complaint.email == "redacted@yahoo.com" and "abuse" in complaint.diagnostic
    assert parse_report(sample("out-of-office.eml", verp)) == []
    forged = verp.replace("+s41-", "+s42-")  # a signature of another send: names nothing
    assert parse_report(sample("postfix-5.1.1.eml", forged))[0].verp is None


def test_rules_hard_soft_complaint_and_mailto_unsubscribe(app, clock):
    jane, jane_send = make_send("jane@example.org")
    verp = tokens.bounce_address("s", jane_send)
    assert process_message(sample("postfix-5.1.1.eml", verp), source="imap")["hard"] == 1
    assert process_message(sample("postfix-5.1.1.eml", verp), source="imap") == {"ignored": 1}
    assert suppression.entry("jane@example.org").reason == "hard_bounce"
    assert db.session.get(Contact, jane).status == "bounced"
    assert db.session.get(MailSend, jane_send).bounced_at is not None
    assert events_of(jane)[-1] == ("email_bounced", {
        "mailing": "newsletter:1", "mailing_id": 1, "kind": "hard",
        "diagnostic": "550 5.1.1 <jane@example.org>: Recipient address rejected: User unknown "
                      "in virtual mailbox table"})

    # Soft: suppressed at the third within 7 days, not before; older ones do not count.
    bob, bob_send = make_send("bob@example.org")
    full = sample("postfix-4.2.2-mailbox-full.eml", tokens.bounce_address("s", bob_send))
    process_message(full.replace(b"8C2D11C0B7E@", b"1@"), source="smtp")
    clock.advance(days=8)
    for n in (2, 3):
        assert suppression.entry("bob@example.org") is None
        process_message(full.replace(b"8C2D11C0B7E@", f"{n}@".encode()), source="smtp")
    assert suppression.entry("bob@example.org") is None  # 2 in the window
    record_bounce(email="bob@example.org", kind="soft", source="ses", external_id="x1")
    assert suppression.entry("bob@example.org").reason == "soft_bounce"
    assert db.session.get(Contact, bob).status == "active"

    # A complaint, though the report hides the address: the quoted return path names Ann.
    ann, ann_send = make_send("ann@example.org")
    arf = sample("arf-abuse-yahoo.eml", tokens.bounce_address("s", ann_send))
    assert process_message(arf, source="imap")["complaints"] == 1
    assert suppression.entry("ann@example.org").reason == "complaint"
    assert db.session.scalar(select(Subscription.status).where(
        Subscription.contact_id == ann)) == "unsubscribed"
    assert [t for t, _ in events_of(ann)][-2:] == ["email_unsubscribed", "email_complained"]
    assert db.session.scalar(select(Bounce.email).where(Bounce.kind == "complaint")) \
        == "ann@example.org"

    # The List-Unsubscribe mailto: a message to the return path with "unsubscribe" in it.
    eve, eve_send = make_send("eve@example.org")
    mailto = (f"From: eve@example.org\r\nTo: {tokens.bounce_address('s', eve_send)}\r\n"
              "Subject: unsubscribe\r\nMessage-ID: <u1@example.org>\r\n\r\n").encode()
    assert process_message(mailto, source="imap") == {"unsubscribes": 1}
    assert events_of(eve)[-1][1]["how"] == "mailto"
    assert process_message(sample("out-of-office.eml", tokens.bounce_address("s", eve_send)),
                           source="imap") == {"ignored": 1}
    assert db.session.scalar(select(Bounce).where(Bounce.email == "eve@example.org")) is None


@pytest.fixture
def imap_server():
    """A real IMAP server (pymap's in-memory backend) on a free loopback port."""
    import socket
    import subprocess
    import sys
    import time
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-c", "from pymap.main import main; main()",
               "--host", "127.0.0.1", "--port", str(port), "--no-tls", "dict"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:  # wait until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("pymap did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def test_bounce_mailbox_is_read_over_imap_and_emptied(make_app, imap_server):
    import imaplib
    app = make_app(MAIL_FROM="Example <news@example.com>",
                   MAIL_BOUNCE_MAILBOX=f"imap://demouser@127.0.0.1:{imap_server}/INBOX",
                   MAIL_BOUNCE_PASSWORD="demopass")
    with app.app_context():
        jane, jane_send = make_send("jane@example.org")
        ann, ann_send = make_send("ann@example.org")
        client = imaplib.IMAP4("127.0.0.1", imap_server)
        client.login("demouser", "demopass")
        for raw in (sample("postfix-5.1.1.eml", tokens.bounce_address("s", jane_send)),
                    sample("arf-abuse-yahoo.eml", tokens.bounce_address("s", ann_send)),
                    sample("out-of-office.eml", tokens.bounce_address("s", jane_send))):
            client.append("INBOX", None, None, raw.replace(b"\n", b"\r\n"))
    result = app.test_cli_runner().invoke(args=["mail", "bounces"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == ("hard: 1, soft: 0, complaints: 1, unsubscribes: 0, "
                                     "ignored: 1, errors: 0")
    client.select("INBOX")
    assert client.uid("SEARCH", "ALL")[1] == [b""]  # each removed once recorded
    client.logout()
    with app.app_context():
        assert {(b.email, b.kind, b.source) for b in db.session.scalars(select(Bounce))} == {
            ("jane@example.org", "hard", "imap"), ("ann@example.org", "complaint", "imap")}
    bad = make_app(MAIL_BOUNCE_MAILBOX=f"imap://demouser@127.0.0.1:{imap_server}/INBOX",
                   MAIL_BOUNCE_PASSWORD="s3cret-wrong")
    result = bad.test_cli_runner().invoke(args=["mail", "bounces"])
    assert result.exit_code == 1 and "s3cret-wrong" not in result.output


def test_smtp_receiver_accepts_only_our_return_paths(app):
    import smtplib
    import socket

    from engine.mail.bounces.receiver import controller
    jane, jane_send = make_send("jane@example.org")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = controller(app, "127.0.0.1", port)
    server.start()
    try:
        with smtplib.SMTP("127.0.0.1", port) as client:
            verp = tokens.bounce_address("s", jane_send)
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail("", ["postmaster@example.com"], b"Subject: x\r\n\r\nx\r\n")
            forged = verp.replace("+s", "+m")
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail("", [forged], b"Subject: x\r\n\r\nx\r\n")
            client.sendmail("", [verp], sample("postfix-4.2.2-mailbox-full.eml", verp)
                            .replace(b"\n", b"\r\n"))
    finally:
        server.stop()
    bounce = db.session.scalar(select(Bounce))
    assert (bounce.email, bounce.kind, bounce.source, bounce.send_id) == (
        "jane@example.org", "soft", "smtp", jane_send)
    assert events_of(jane)[-1][1]["kind"] == "soft"
