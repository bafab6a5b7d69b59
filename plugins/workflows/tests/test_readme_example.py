"""The README's worked example, as a marketer would see it happen."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.contacts.models import Contact
from engine.db import db, utcnow
from plugins.workflows.tests.support import (
    path,
    person,
    record,
    site,
    template,
    tick,
    workflow,
)

OPENED_1 = {"match": "all", "conditions": [{"kind": "wf_email", "action": "opened",
                                             "step": "guide"}]}
PRICING = {"match": "any", "conditions": [{"kind": "wf_page", "path": "/pricing*"}]}


@pytest.mark.both_backends
def test_guide_nurture_as_the_readme_tells_it(make_app, smtp_server, clock, work):
    app = site(make_app, smtp_server)
    guide, case, reminder = (template(app, "Your guide"), template(app, "Case study"),
                             template(app, "Guide reminder"))
    flow = workflow(app, "Guide nurture", {"kind": "form_submitted", "form": "guide"}, {
        "start": "guide", "steps": {
            "guide": {"kind": "send_email", "template_id": guide, "next": "wait"},
            "wait": {"kind": "wait", "mode": "duration", "minutes": 2 * 24 * 60,
                     "next": "opened"},
            "opened": {"kind": "if", "condition": OPENED_1, "yes": "case", "no": "remind"},
            "case": {"kind": "send_email", "template_id": case, "next": "pricing"},
            "remind": {"kind": "send_email", "template_id": reminder, "next": "pricing"},
            "pricing": {"kind": "wait", "mode": "until_condition", "condition": PRICING,
                        "timeout_minutes": 7 * 24 * 60, "next": "sql",
                        "timeout_next": "done"},
            "sql": {"kind": "set_stage", "stage": "sales_qualified", "next": "tell"},
            "tell": {"kind": "notify", "to": "sales@yourcompany.com",
                     "subject": "Sales-qualified from the guide", "message": "Call them."},
            "done": {"kind": "end"}}},
        {"enrol": "once", "quiet_from": 21, "quiet_to": 8, "days": [0, 1, 2, 3, 4]})
    tuesday = datetime(2030, 6, 4, 10, 0, tzinfo=UTC)
    clock.advance(seconds=(tuesday - utcnow()).total_seconds())
    ann = person(app, "ann@example.com", first_name="Ann")
    record(app, "form_submitted", ann, form="guide")
    work(app)
    assert [m["Subject"] for m in smtp_server.messages] == ["Your guide"]
    record(app, "email_opened", ann, mailing=f"workflow:{flow}:guide", machine=False)
    tick(app, clock, days=2, seconds=1)  # Thursday 10:00
    work(app)
    assert [m["Subject"] for m in smtp_server.messages][1:] == ["Case study"]
    tick(app, clock, days=1)  # Friday
    record(app, "page_view", ann, path="/pricing")
    work(app)
    told = smtp_server.messages[-1]
    assert told["To"] == "sales@yourcompany.com"
    assert "ann@example.com" in told["Subject"]
    assert "/admin/contacts/" in told.get_body(("html",)).get_content()
    with app.app_context():
        assert db.session.get(Contact, ann).lifecycle_stage == "sales_qualified"
    assert [step for step, _ in path(app, flow, ann)] == [
        "guide", "wait", "opened", "case", "pricing", "sql", "tell"]
