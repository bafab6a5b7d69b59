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
    delayed = sample("postfix-4.2.2-mailbox-full.eml", verp).replace(b"Action: failed",
                                                                      b"Action: delayed")
    assert parse_report(delayed) == []  # still being retried: not a bounce yet
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
    # A report that names an address but no return path of ours is anyone's word: ignored.
    forged = sample("postfix-5.1.1.eml", "bounces@elsewhere.example")
    assert process_message(forged, source="imap") == {"ignored": 1}
    assert db.session.scalar(select(Bounce)) is None
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

    from engine.contacts import gdpr
    assert gdpr.export_contact(jane)["mail_bounces"][0]["kind"] == "hard"
    gdpr.erase_contact(jane, actor="test")
    assert db.session.scalar(select(Bounce).where(Bounce.contact_id == jane)) is None
    assert suppression.blocked(["jane@example.org"], marketing=False) == {"jane@example.org"}


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
    db.session.rollback()  # a read begun before the receiver wrote would not see its row
    bounce = db.session.scalar(select(Bounce))
    assert (bounce.email, bounce.kind, bounce.source, bounce.send_id) == (
        "jane@example.org", "soft", "smtp", jane_send)
    assert events_of(jane)[-1][1]["kind"] == "soft"


# --- ESP webhooks: real signatures, built here -------------------------------------------

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-bounces"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem"


@pytest.fixture
def sns(monkeypatch):
    """An RSA key and self-signed certificate standing for Amazon's; only the network fetch
    of the certificate (and of a SubscribeURL) is replaced."""
    import base64
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.x509.oid import NameOID

    from engine.mail.bounces import webhooks
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return cert.public_bytes(serialization.Encoding.PEM) if url == CERT_URL else b"ok"
    monkeypatch.setattr(webhooks, "_fetch", fetch)

    def signed(kind: str, version: str = "2", **fields) -> dict:
        envelope = {"Type": kind, "MessageId": fields.pop("MessageId", "m-1"),
                    "TopicArn": TOPIC, "Timestamp": "2026-11-10T09:14:03.000Z",
                    "SignatureVersion": version, "SigningCertURL": CERT_URL, **fields}
        names = webhooks._SIGNED_FIELDS[kind]
        text = "".join(f"{n}\n{envelope[n]}\n" for n in names if n in envelope)
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        envelope["Signature"] = base64.b64encode(
            key.sign(text.encode(), padding.PKCS1v15(), algorithm)).decode()
        return envelope
    signed.fetched = fetched
    return signed


def test_ses_notifications_are_verified_and_recorded(make_app, sns):
    import json
    assert make_app().test_client().post("/email/webhooks/ses", json={}).status_code == 404
    app = make_app(MAIL_SES_TOPIC_ARN=TOPIC)
    client = app.test_client()
    assert client.post("/email/webhooks/elastic", json={}).status_code == 404
    with app.app_context():
        jane, jane_send = make_send("jane@example.org")

    subscribe = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=t"
    confirm = sns("SubscriptionConfirmation", "1", Token="t", SubscribeURL=subscribe,
                  Message="You have chosen to subscribe")
    assert client.post("/email/webhooks/ses", json=confirm).status_code == 200
    assert sns.fetched == [CERT_URL, subscribe]  # the certificate is then cached
    for url in ("http://169.254.169.254/latest/meta-data/", "https://sns.eu-west-1.amazonaws"
                ".com@127.0.0.1/", "https://sns.eu-west-1.amazonaws.com:8443/"):
        probe = sns("SubscriptionConfirmation", "1", Token="t", SubscribeURL=url, Message="x")
        assert client.post("/email/webhooks/ses", json=probe).status_code == 403
    assert sns.fetched == [CERT_URL, subscribe]  # none of those was fetched

    bounce = {"notificationType": "Bounce", "bounce": {
        "bounceType": "Permanent", "bounceSubType": "General", "feedbackId": "0100-fb-1",
        "bouncedRecipients": [{"emailAddress": "jane@example.org", "status": "5.1.1",
                               "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]},
        "mail": {"messageId": "ses-1", "source": "news@example.com", "commonHeaders": {
            "messageId": "<176276604.a1b2c3d4@example.com>"}}}
    notification = sns("Notification", Message=json.dumps(bounce))
    forged = {**notification, "Message": notification["Message"].replace("jane", "ann")}
    assert client.post("/email/webhooks/ses", json=forged).status_code == 403
    elsewhere = sns("Notification", Message=json.dumps(bounce),
                    SigningCertURL="https://sns.eu-west-1.amazonaws.com.evil.test/x.pem")
    assert client.post("/email/webhooks/ses", json=elsewhere).status_code == 403
    other_topic = {**notification, "TopicArn": TOPIC + "-other"}
    assert client.post("/email/webhooks/ses", json=other_topic).status_code == 403
    with app.app_context():
        assert db.session.scalar(select(Bounce)) is None
    for _ in range(2):  # delivered twice by SNS, counted once
        assert client.post("/email/webhooks/ses", json=notification).status_code == 200
    delivery = {"notificationType": "Delivery", "delivery": {"recipients": ["jane@example.org"]},
                "mail": {"messageId": "ses-1", "commonHeaders": {
                    "messageId": "<176276604.a1b2c3d4@example.com>"}}}
    assert client.post("/email/webhooks/ses", json=sns(
        "Notification", MessageId="m-2", Message=json.dumps(delivery))).status_code == 200
    assert sns.fetched == [CERT_URL, subscribe]
    with app.app_context():
        stored, = db.session.scalars(select(Bounce))
        assert (stored.kind, stored.send_id, stored.source) == ("hard", jane_send, "ses")
        assert suppression.entry("jane@example.org").reason == "hard_bounce"
        assert [t for t, _ in events_of(jane)] == ["email_bounced", "email_delivered"]
        assert events_of(jane)[1][1] == {"mailing": "newsletter:1", "mailing_id": 1}


def test_mailgun_postmark_and_sendgrid_signatures(make_app):
    import base64
    import hashlib
    import hmac
    import json
    import time

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    sendgrid_key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    app = make_app(MAIL_MAILGUN_SIGNING_KEY="mg-key", MAIL_POSTMARK_WEBHOOK_USER="pm",
                   MAIL_POSTMARK_WEBHOOK_PASSWORD="pm-secret", MAIL_SENDGRID_PUBLIC_KEY=public)
    client = app.test_client()
    with app.app_context():
        jane, jane_send = make_send("jane@example.org")
        ann, _ = make_send("ann@example.org")
        bob, _ = make_send("bob@example.org")

    def mailgun(token: str, timestamp: int, key: str = "mg-key") -> dict:
        digest = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
        return {"signature": {"timestamp": str(timestamp), "token": token,
                              "signature": digest.hexdigest()},
                "event-data": {"event": "failed", "severity": "permanent", "id": "ev-" + token,
                               "recipient": "jane@example.org",
                               "delivery-status": {"code": 550, "message": "No such user"},
                               "message": {"headers": {
                                   "message-id": "176276604.a1b2c3d4@example.com"}}}}
    now = int(time.time())
    url = "/email/webhooks/mailgun"
    assert client.post(url, json=mailgun("t1", now, key="wrong")).status_code == 403
    assert client.post(url, json=mailgun("t0", now - 3600)).status_code == 403  # too old
    assert client.post(url, json=mailgun("t1", now)).status_code == 200
    assert client.post(url, json=mailgun("t1", now)).status_code == 403  # a replay

    url = "/email/webhooks/postmark"
    complaint = {"RecordType": "SpamComplaint", "Type": "SpamComplaint", "ID": 42,
                 "Email": "ann@example.org", "Details": "Marked as spam"}
    assert client.post(url, json=complaint, auth=("pm", "wrong")).status_code == 403
    assert client.post(url, json=complaint).status_code == 403
    assert client.post(url, json=complaint, auth=("pm", "pm-secret")).status_code == 200

    url = "/email/webhooks/sendgrid"
    body = json.dumps([
        {"email": "bob@example.org", "event": "bounce", "type": "bounce", "status": "5.1.1",
         "reason": "550 5.1.1 unknown", "sg_event_id": "sg-1", "smtp-id": "<x@example.com>"},
        {"email": "bob@example.org", "event": "delivered", "sg_event_id": "sg-2"}]).encode()
    stamp = str(now)
    signature = base64.b64encode(sendgrid_key.sign(stamp.encode() + body,
                                                   ec.ECDSA(hashes.SHA256()))).decode()
    headers = {"X-Twilio-Email-Event-Webhook-Signature": signature,
               "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
               "Content-Type": "application/json"}
    tampered = body.replace(b"bob@", b"eve@")
    assert client.post(url, data=tampered, headers=headers).status_code == 403
    assert client.post(url, data=body, headers=headers).status_code == 200

    with app.app_context():
        assert {(b.email, b.kind, b.source, b.send_id) for b in db.session.scalars(
            select(Bounce))} == {("jane@example.org", "hard", "mailgun", jane_send),
                                 ("ann@example.org", "complaint", "postmark", None),
                                 ("bob@example.org", "hard", "sendgrid", None)}
        assert suppression.entry("ann@example.org").reason == "complaint"
        assert [t for t, _ in events_of(bob)] == ["email_bounced", "email_delivered"]
