"""The hand-off to sales: once per qualification, by email and webhook, never for a poor fit."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select, update

from engine.contacts import service as contacts
from engine.db import db, write
from engine.events.models import Activity, QueuedEvent
from engine.events.service import partition_of
from engine.jobs.outbox import OutboxRow, sweep
from engine.testing import deliver_events
from plugins.scoring.models import Handoff
from plugins.scoring.tests.test_apply import (
    configure,
    count,
    fit_rule,
    page_rule,
    person,
    scores,
    view,
)


def handoffs(app) -> list[tuple[str, str]]:
    with app.app_context():
        found = [(h.stage, h.sent_to) for h in db.session.scalars(select(Handoff))]
        db.session.rollback()
        return found


def deliver_again(app, kind: str) -> None:
    """Queue the delivered events of this type once more, as a retried delivery would."""
    with app.app_context(), write() as session:
        for row in session.scalars(select(Activity).where(Activity.type == kind)):
            session.add(QueuedEvent(partition=partition_of(row.contact_id, row.visitor_id),
                                    event_id=row.id))
    assert deliver_events(app) > 0


def test_a_qualified_lead_reaches_sales_once(make_app, smtp_server, work):
    app = make_app(**smtp_server.config)
    configure(app, mql_combined=50, handoff_email="sales@example.com")
    page_rule(app, "Pricing page", 30, "/pricing")
    ada = person(app, "ada@example.com", first_name="Ada <script>x</script>",
                 last_name="Lovelace\r\nBcc: all@example.com", company="Analytical & Co")
    view(app, ada, "/pricing", times=2)
    deliver_events(app)
    assert scores(app, ada)[2] == "marketing_qualified"
    assert handoffs(app) == [("marketing_qualified", "sales@example.com")]
    deliver_again(app, "stage_changed")
    deliver_again(app, "page_view")
    work(app)
    work(app)
    assert handoffs(app) == [("marketing_qualified", "sales@example.com")]
    assert len(smtp_server.messages) == 1
    message = smtp_server.messages[0]
    assert message["To"] == "sales@example.com"
    assert message["Subject"] == \
        "Sales-ready lead: Ada <script>x</script> Lovelace Bcc: all@example.com (score 60)"
    html = message.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "Analytical &amp; Co" in html and "Pricing page" in html
    assert f'href="http://localhost/admin/contacts/{ada}"' in html
    assert "MQL since" in html


def test_the_owner_field_names_the_salesperson(make_app, smtp_server, work):
    app = make_app(**smtp_server.config)
    configure(app, mql_combined=10, handoff_email="sales@example.com", owner_field="owner")
    page_rule(app, "Demo", 20, "/demo")
    ada = person(app, "ada@example.com", owner="Grace@Example.com")
    bob = person(app, "bob@example.com", owner="not an address")
    view(app, ada, "/demo")
    view(app, bob, "/demo")
    deliver_events(app)
    work(app)
    assert sorted(m["To"] for m in smtp_server.messages) == [
        "grace@example.com", "sales@example.com"]


def test_a_poor_fit_is_never_handed_off(make_app, smtp_server, work):
    app = make_app(**smtp_server.config)
    configure(app, poor_fit_below=-20, handoff_email="sales@example.com")
    fit_rule(app, "Student", -30, {"match": "all", "groups": [{"match": "all", "conditions": [
        {"kind": "field", "field": "job_title", "op": "equals", "value": "student"}]}]})
    ada = person(app, "ada@example.com", job_title="Student")
    deliver_events(app)
    with app.app_context(), write():  # moved by hand: the stage is the admin's to set
        contacts.apply_values(db.session.get(contacts.Contact, ada),
                              {"lifecycle_stage": "marketing_qualified"})
    deliver_events(app)
    work(app)
    assert handoffs(app) == [("marketing_qualified", "not handed off: poor fit")]
    assert smtp_server.messages == []


def test_nobody_to_send_to_is_said_so(app):
    configure(app, mql_combined=10)
    page_rule(app, "Demo", 20, "/demo")
    view(app, person(app, "ada@example.com"), "/demo")
    deliver_events(app)
    assert handoffs(app) == [("marketing_qualified", "no recipient configured")]


class Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.server.seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(self.server.answers.pop(0) if self.server.answers else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.seen, server.answers = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_the_webhook_gets_the_hand_off_and_a_failure_is_retried(make_app, hook, work):
    app = make_app(OUTBOUND_ALLOW_PRIVATE=True, OUTBOUND_ALLOW_HTTP=True)
    url = f"http://127.0.0.1:{hook.server_address[1]}/crm"
    configure(app, mql_combined=10, handoff_webhook=url)
    page_rule(app, "Demo", 20, "/demo")
    ada = person(app, "ada@example.com", first_name="Ada", last_name="Lovelace",
                 company="Analytical")
    view(app, ada, "/demo")
    hook.answers = [503]
    deliver_events(app)
    work(app)
    assert len(hook.seen) == 1
    with app.app_context():
        row = db.session.scalar(select(OutboxRow).where(OutboxRow.job == "scoring.post_webhook"))
        assert (row.status, row.attempts) == ("pending", 1) and "503" in row.last_error
    with app.app_context(), write():  # the back-off has passed
        db.session.execute(update(OutboxRow).where(OutboxRow.id == row.id)
                           .values(available_at=row.created_at))
    with app.app_context():
        sweep()
    work(app)
    assert len(hook.seen) == 2 and hook.seen[0] == hook.seen[1]
    sent = hook.seen[1]
    assert sent["event"] == "handoff"
    assert sent["contact"] == {"id": ada, "email": "ada@example.com", "name": "Ada Lovelace",
                               "company": "Analytical", "stage": "marketing_qualified"}
    assert sent["scores"] == {"fit": 0, "engagement": 20, "combined": 20}
    assert sent["url"] == f"http://localhost/admin/contacts/{ada}"
    assert sent["reason"].startswith("MQL since")
    assert handoffs(app) == [("marketing_qualified", "webhook HTTP 200")]


def test_a_webhook_on_a_private_address_is_refused_and_noted(make_app, hook, work, tmp_path):
    """Allowed when saved (an intranet setting since removed): refused when posting."""
    url = f"http://localhost:{hook.server_address[1]}/crm"
    configure(make_app(instance=tmp_path / "site", OUTBOUND_ALLOW_PRIVATE=True,
                       OUTBOUND_ALLOW_HTTP=True), mql_combined=10, handoff_webhook=url)
    app = make_app(instance=tmp_path / "site", OUTBOUND_ALLOW_HTTP=True)
    page_rule(app, "Demo", 20, "/demo")
    view(app, person(app, "ada@example.com"), "/demo")
    deliver_events(app)
    work(app)
    assert hook.seen == []
    assert handoffs(app) == [("marketing_qualified", "webhook refused (private address)")]
    assert count(app, OutboxRow, job="scoring.post_webhook", status="done") == 1


def test_the_settings_refuse_a_private_webhook(app):
    with app.app_context():
        manager = app.extensions["magnet.plugins"]
        data = manager.settings_formdata("scoring")
        data["handoff_webhook"] = "https://169.254.169.254/latest"
        form, changes = manager.save_settings("scoring", data)
    assert changes == {} and "private network" in form.handoff_webhook.errors[0]
