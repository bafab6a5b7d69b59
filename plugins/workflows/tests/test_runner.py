"""Enrolment by events, steps run in order, waits by the clock, branches on what people did."""
from __future__ import annotations

import pytest

from plugins.workflows.tests.support import (
    path,
    person,
    record,
    run_due,
    sends,
    site,
    template,
    tick,
    workflow,
)


def nurture(app, welcome, reminder):
    return workflow(app, "Nurture", {"kind": "form_submitted", "form": "demo"}, {
        "start": "s1", "steps": {
            "s1": {"kind": "send_email", "template_id": welcome, "next": "s2"},
            "s2": {"kind": "wait", "mode": "duration", "minutes": 60 * 24 * 2, "next": "s3"},
            "s3": {"kind": "if", "condition": {"match": "all", "conditions": [
                {"kind": "wf_email", "action": "opened", "step": "s1"}]},
                "yes": "hot", "no": "s4"},
            "hot": {"kind": "tag", "action": "add", "tag": "engaged"},
            "s4": {"kind": "send_email", "template_id": reminder},
        }})


@pytest.mark.both_backends
def test_a_form_submission_enrols_and_the_opened_branch_is_taken(make_app, smtp_server, clock,
                                                                 work):
    app = site(make_app, smtp_server)
    welcome, reminder = template(app, "Welcome"), template(app, "Reminder")
    flow = nurture(app, welcome, reminder)
    ann, bob = person(app, "ann@example.com", first_name="Ann"), person(app, "bob@example.com")
    record(app, "form_submitted", ann, form="demo")
    record(app, "form_submitted", bob, form="other")
    assert path(app, flow, ann) == [("s1", "email queued")]
    assert path(app, flow, bob) == []
    work(app)
    assert [m["To"] for m in smtp_server.messages] == ["ann@example.com"]
    record(app, "email_opened", ann, mailing=f"workflow:{flow}:s1", machine=False)
    assert tick(app, clock, days=1) == 0  # not due yet
    assert tick(app, clock, days=1, minutes=1) == 1
    assert path(app, flow, ann) == [("s1", "email queued"), ("s2", "waited"), ("s3", "yes"),
                                    ("hot", "tagged engaged")]
    assert len(sends(app)) == 1
    assert run_due(app) == 0


def test_up_to_four_runs_of_the_due_steps_overlap_on_as_many_workers(app):
    from engine.jobs.connection import client_for
    from engine.jobs.runner import run_named
    conn = client_for(app)
    held = [f"magnet:running:workflows.run_due{f':{n}' if n else ''}" for n in range(4)]
    with app.app_context():
        for key in held[:3]:
            conn.set(key, "1")  # three runs going on other workers
        assert run_named("workflows.run_due", {}) == 0  # a fourth may run
        assert conn.get(held[3]) is None  # and gave its slot back
        conn.set(held[3], "1")
        assert run_named("workflows.run_due", {}) is None  # a fifth may not
        conn.delete(*held)
