"""Sending a mailing to many: once per recipient, suppression honoured at send time, the
unsubscribe headers and return path of each copy, 4xx and 5xx, and a worker killed mid-batch."""
from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.contacts import service as contacts
from engine.contacts import store
from engine.contacts.models import Contact
from engine.db import db, write
from engine.events.models import Activity
from engine.jobs import outbox
from engine.jobs.outbox import OutboxRow
from engine.mail import sending, suppression, tokens
from engine.mail.models import Bounce, EmailTemplate, MailSend
from engine.mail.ratelimit import Limiter, RateLimited
from engine.testing import start_worker, stop_worker, wait_until

SITE = "https://news.example.com"


def site(make_app: Any, smtp_server: Any, **config: Any) -> Any:
    return make_app(**smtp_server.config, SITE_URL=SITE,
                    MAIL_FROM="Acme <hello@acme.example>", **config)


def people(app: Any, count: int, list_slug: str = "news") -> list[int]:
    with app.app_context(), write():
        ids = []
        for n in range(count):
            contact, _, _ = contacts.upsert(f"p{n}@example.com", {"first_name": f"Pat{n}"})
            store.subscribe(contact.id, [list_slug])
            ids.append(contact.id)
        return ids


def queue(app: Any, ids: list[int], key: str = "newsletter:1", **fields: Any) -> int:
    fields.setdefault("list_slug", "news")
    with app.app_context(), write():
        template = db.session.scalar(select(EmailTemplate).where(EmailTemplate.name == "News"))
        if template is None:
            template = EmailTemplate(name="News", subject="News for {{ contact.first_name }}",
                                     body="<p>Hello {{ contact.first_name }}</p>")
            db.session.add(template)
            db.session.flush()
        mailing = sending.mailing(key, template_id=template.id, **fields)
        return sending.enqueue(mailing, ids)


def statuses(app: Any) -> Counter[str]:
    with app.app_context():
        found = Counter(db.session.scalars(select(MailSend.status)))
        db.session.rollback()
        return found


def test_a_mailing_reaches_each_subscriber_once_with_its_own_unsubscribe(make_app, smtp_server,
                                                                          work):
    app = site(make_app, smtp_server)
    ids = people(app, 12)
    with app.app_context(), write():
        suppression.suppress("p3@example.com", "hard_bounce")
        store.unsubscribe(ids[4], ["news"])
    assert queue(app, ids) == 12
    assert queue(app, ids) == 0  # queued twice: nobody twice
    work(app)
    assert statuses(app) == {"sent": 10, "suppressed": 2}
    got = {m["To"]: m for m in smtp_server.messages}
    assert sorted(got) == sorted(f"p{n}@example.com" for n in range(12) if n not in (3, 4))
    message = got["p0@example.com"]
    assert message["Subject"] == "News for Pat0"
    assert "Hello Pat0" in message.get_body(("html",)).get_content()
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = [part.strip(" <>") for part in message["List-Unsubscribe"].split(",")]
    assert https.startswith(f"{SITE}/email/unsubscribe/")
    with app.app_context():
        contact_id, send_id = tokens.read_recipient_token(https.rsplit("/", 1)[1])
        assert contact_id == ids[0]
        envelope_from = smtp_server.envelopes[[m["To"] for m in smtp_server.messages]
                                              .index("p0@example.com")][0]
        assert tokens.read_bounce_address(envelope_from) == ("s", send_id)
        assert mailto.startswith(f"mailto:{envelope_from}")
        assert message["List-Id"] == "<news.acme.example>"
        sent = db.session.scalar(select(func.count()).select_from(Activity).where(
            Activity.type == "email_sent"))
        assert sent == 10
    work(app)  # a second run sends nothing again
    assert len(smtp_server.messages) == 10


def test_an_unsubscribe_is_honoured_by_the_next_batch(make_app, smtp_server, work):
    app = site(make_app, smtp_server)
    ids = people(app, 3)
    queue(app, ids, list_slug="")
    with app.app_context(), write():  # after queueing, before sending
        suppression.suppress("p1@example.com", "unsubscribed")
    work(app)
    assert sorted(m["To"] for m in smtp_server.messages) == ["p0@example.com", "p2@example.com"]


class Refusing:
    """An SMTP server that says one address does not exist (550 5.1.1), refuses another for a
    reason of its own (554 5.7.1), and is busy, once, for a third (451)."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.busy_once = True
        self.busy_always = ""

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address == "p1@example.com":
            return "550 5.1.1 No such user"
        if address == "p4@example.com":
            return "554 5.7.1 Relaying denied"
        if address == self.busy_always or (self.busy_once and address == "p2@example.com"):
            self.busy_once = False
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.extend(envelope.rcpt_tos)
        return "250 Accepted"


@pytest.fixture
def refusing_server():
    from aiosmtpd.controller import Controller

    from tests.serve_support import free_port
    handler = Refusing()
    handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


def test_a_5xx_fails_one_recipient_a_4xx_retries_it_alone_and_only_a_dead_address_bounces(
        make_app, refusing_server, work, clock):
    app = make_app(MAIL_HOST="127.0.0.1", MAIL_PORT=refusing_server.port, SITE_URL=SITE)
    ids = people(app, 5)
    queue(app, ids)
    work(app)
    assert refusing_server.messages == ["p0@example.com", "p3@example.com"]  # the rest goes on
    assert statuses(app) == {"sent": 2, "failed": 2, "queued": 1}
    with app.app_context():
        gone = db.session.scalar(select(MailSend).where(MailSend.contact_id == ids[1]))
        assert gone.status == "failed" and "5.1.1" in gone.error
        assert suppression.blocked(["p1@example.com"], marketing=False)  # a hard bounce
        # "Relaying denied" is about the sender, not the address: nobody is suppressed for it.
        assert not suppression.blocked(["p4@example.com"], marketing=True)
    clock.advance(minutes=5)  # the busy recipient's own retry
    retry(app, work)
    assert sorted(refusing_server.messages) == ["p0@example.com", "p2@example.com",
                                                 "p3@example.com"]
    assert statuses(app) == {"sent": 3, "failed": 2}


def test_a_recipient_busy_for_hours_is_tried_less_and_less_often_then_given_up(
        make_app, refusing_server, work, clock):
    """451 every time: retried after 5, 10, 20… minutes (never more than 6 hours apart), and
    after `GIVE_UP_AFTER` attempts failed with a soft bounce, so the mailing finishes."""
    from engine.mail.ledger import GIVE_UP_AFTER
    refusing_server.busy_once = False
    refusing_server.busy_always = "p2@example.com"
    app = make_app(MAIL_HOST="127.0.0.1", MAIL_PORT=refusing_server.port, SITE_URL=SITE)
    ids = people(app, 3)
    queue(app, ids)
    work(app)
    waits = []
    for _ in range(GIVE_UP_AFTER - 1):
        with app.app_context():
            due = db.session.scalar(select(func.min(OutboxRow.available_at)).where(
                OutboxRow.status == "pending"))
            waits.append(round((due - clock.now()).total_seconds() / 60))
        clock.advance(minutes=waits[-1] + 1)
        retry(app, work)
    assert waits == [5, 10, 20, 40, 80, 160, 320]
    assert statuses(app) == {"sent": 1, "failed": 2}  # p1's address does not exist
    with app.app_context():
        busy = db.session.scalar(select(MailSend).where(MailSend.contact_id == ids[2]))
        assert busy.attempts == GIVE_UP_AFTER and "given up after 8 attempts" in busy.error
        assert db.session.scalar(select(func.count()).select_from(Bounce).where(
            Bounce.kind == "soft", Bounce.email == "p2@example.com")) == 1


def retry(app: Any, work: Any) -> None:
    """What the periodic sweep does once rows are due again: wake their queue, then work."""
    with app.app_context():
        outbox.sweep()
    work(app)


def _sent(app: Any) -> int:
    return statuses(app)["sent"]


@pytest.mark.slow
def test_a_worker_killed_mid_batch_loses_nobody_and_duplicates_at_most_one(
        make_app, smtp_server, work, clock):
    smtp_server.delay = 0.05
    app = site(make_app, smtp_server)
    ids = people(app, 60)
    queue(app, ids)
    worker = start_worker(app)
    try:
        assert wait_until(lambda: _sent(app) >= 15, 60), "the worker sent nothing"
    finally:
        stop_worker(worker, kill=True)  # kill -9, mid-batch
    killed_at = len(smtp_server.messages)
    assert killed_at < 60
    assert statuses(app)["sending"] > 0  # its claim is left behind
    clock.advance(minutes=10)  # the claim and the outbox lease go stale
    retry(app, work)
    received = Counter(m["To"] for m in smtp_server.messages)
    assert sorted(received) == sorted(f"p{n}@example.com" for n in range(60))  # none lost
    assert sum(received.values()) - 60 <= 1  # at most the message in flight, once
    assert statuses(app) == {"sent": 60}
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxRow).where(
            OutboxRow.status != "done")) == 0
        announced = Counter(db.session.scalars(select(Activity.contact_id).where(
            Activity.type == "email_sent")))
        assert sorted(announced) == sorted(ids) and set(announced.values()) == {1}


def test_the_global_rate_limit_waits_for_the_next_second_and_stops_at_the_hour(app, clock):
    waits: list[float] = []

    def sleeping(seconds: float) -> None:  # the controllable clock moves instead
        waits.append(seconds)
        clock.advance(seconds=seconds + 0.001)

    with app.app_context():
        limiter = Limiter(per_second=3, per_hour=8, sleep=sleeping)
        other_worker = Limiter(per_second=3, per_hour=8, sleep=sleeping)
        for n in range(8):
            (limiter if n % 2 else other_worker).wait()  # one allowance, shared
        assert len(waits) == 2  # 3 in a second, 3 in the next, 2 in the third
        with pytest.raises(RateLimited) as stopped:
            limiter.wait()
        assert 0 < stopped.value.retry_after.total_seconds() <= 3600


def test_transactional_mail_reaches_the_unsubscribed_never_the_bounced(make_app, smtp_server,
                                                                       work):
    from engine import mail
    from engine.mail.models import MailMessage
    app = site(make_app, smtp_server)
    with app.app_context(), write():
        suppression.suppress("gone@example.com", "hard_bounce")
        suppression.suppress("left@example.com", "unsubscribed")
        for to in ("gone@example.com", "left@example.com"):
            mail.send(to, "Confirm your subscription", "<p>Click</p>")
    work(app)
    assert [m["To"] for m in smtp_server.messages] == ["left@example.com"]
    with app.app_context():
        kept = db.session.scalar(select(MailMessage).where(MailMessage.to == "left@example.com"))
        assert tokens.read_bounce_address(smtp_server.envelopes[0][0]) == ("m", kept.id)
        assert db.session.scalar(select(MailMessage.status).where(
            MailMessage.to == "gone@example.com")) == "suppressed"


def test_a_recipient_the_template_fails_for_is_failed_and_the_rest_are_sent(make_app,
                                                                            smtp_server, work):
    app = site(make_app, smtp_server)
    ids = people(app, 3)
    with app.app_context(), write():
        contacts.define_field("seats", "Seats", "number")
        for n, contact_id in enumerate(ids):
            db.session.get(Contact, contact_id).custom = {"seats": n}
        # Stored directly, as an older or imported template could be: the editor refuses it.
        template = EmailTemplate(name="Per seat", subject="Price",
                                 body="<p>{{ 120 / contact.seats }} per seat</p>")
        db.session.add(template)
        db.session.flush()
        sending.enqueue(sending.mailing("offer:1", template_id=template.id), ids)
    work(app)
    assert sorted(m["To"] for m in smtp_server.messages) == ["p1@example.com", "p2@example.com"]
    with app.app_context():
        failed = db.session.scalar(select(MailSend).where(MailSend.status == "failed"))
        assert failed.contact_id == ids[0] and "template failed" in failed.error


def test_sends_claimed_by_a_live_worker_wait_and_one_that_died_is_taken_over(make_app,
                                                                            smtp_server, work,
                                                                            clock):
    app = site(make_app, smtp_server)
    ids = people(app, 2)
    queue(app, ids)
    with app.app_context(), write() as session:  # as if another worker had just claimed one
        session.execute(MailSend.__table__.update().where(MailSend.contact_id == ids[0]).values(
            status="sending", claimed_at=clock.now()))
    work(app)
    assert [m["To"] for m in smtp_server.messages] == ["p1@example.com"]
    with app.app_context():  # the batch is not done: it waits for the other worker's claim
        assert db.session.scalar(select(OutboxRow.status).where(
            OutboxRow.job == "mail.send_mailing")) == "pending"
    clock.advance(minutes=10)  # that worker died: its claim is stale
    retry(app, work)
    assert sorted(m["To"] for m in smtp_server.messages) == ["p0@example.com", "p1@example.com"]
    assert statuses(app) == {"sent": 2}


def test_magnet_mail_send_sends_a_template_to_a_list_once(make_app, smtp_server, work):
    app = site(make_app, smtp_server)
    people(app, 3)
    queue(app, [])  # the "News" template
    runner = app.test_cli_runner()
    with app.app_context(), write():
        suppression.suppress("p2@example.com", "unsubscribed")
    dry = runner.invoke(args=["mail", "send", "news", "--list", "news", "--dry-run"])
    assert dry.exit_code == 0 and "3 contact(s)" in dry.output, dry.output
    assert "1 of the others are on the suppression list" in dry.output
    assert "2 to send" in dry.output
    assert statuses(app) == {}
    for _ in range(2):  # the same command again: nobody twice
        done = runner.invoke(args=["mail", "send", "News", "--list", "news", "--yes"])
        assert done.exit_code == 0, done.output
    work(app)
    assert sorted(m["To"] for m in smtp_server.messages) == ["p0@example.com", "p1@example.com"]
    assert {m["From"] for m in smtp_server.messages} == {"Acme <hello@acme.example>"}
    wrong = runner.invoke(args=["mail", "send", "News", "--list", "news", "--to", "x@y.z"])
    assert wrong.exit_code != 0 and "exactly one audience" in wrong.output
    typo = runner.invoke(args=["mail", "send", "News", "--list", "nwes", "--dry-run"])
    assert typo.exit_code != 0 and "no list named 'nwes' (lists: news)" in typo.output


def test_a_mailing_comes_from_the_site_or_its_own_from_name_never_the_engine(make_app,
                                                                             smtp_server, work):
    app = make_app(**smtp_server.config, SITE_URL=SITE, SITE_NAME="Brightwater")
    ids = people(app, 1)
    queue(app, ids)
    queue(app, ids, key="newsletter:2", from_name="Brightwater News")
    work(app)
    assert sorted(m["From"] for m in smtp_server.messages) == [
        "Brightwater <hello@localhost>", "Brightwater News <hello@localhost>"]


def test_a_batch_that_gives_way_counts_no_attempt_for_the_rest(make_app, smtp_server, work,
                                                                monkeypatch):
    """A mailing's batch that keeps giving way to jobs ahead of it (every 5 messages here)
    sends everyone once, and the recipients it stopped before keep their retries: giving
    way is not an attempt."""
    app = site(make_app, smtp_server)
    ids = people(app, 12)
    monkeypatch.setattr(sending, "GIVE_WAY_EVERY", 5)
    monkeypatch.setattr(sending, "GIVE_WAY_AFTER", 0.0)
    monkeypatch.setattr(outbox, "ahead_waiting", lambda queue: queue == "mail")
    queue(app, ids)
    work(app)
    assert statuses(app) == {"sent": 12}
    assert sorted(m["To"] for m in smtp_server.messages) == sorted(
        f"p{n}@example.com" for n in range(12))
    with app.app_context():
        assert set(db.session.scalars(select(MailSend.attempts))) == {1}
