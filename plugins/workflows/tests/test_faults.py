"""Each step runs once per enrolment, and each drip email reaches its contact once, whatever
runs at the same time: two worker processes, two batches overlapping in one process, a worker
killed with SIGKILL in the middle of sending, a step that fails until its template is back.

The workers are processes of their own: the `clock` fixture moves only this process's clock, so
to make a crowd of waits end together while the workers run, these tests set the due rows'
`due_at` into the past in the database, as if the wait had simply passed.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from rq import Queue
from sqlalchemy import func, select, update

from engine.contacts import service as contacts
from engine.contacts.models import ContactTag, Tag
from engine.db import db, utcnow, write
from engine.events.models import Activity
from engine.jobs.connection import connection
from engine.mail.models import EmailTemplate, MailSend
from engine.testing import age_claims, start_worker, stop_worker, wait_until
from plugins.workflows import manual, runner
from plugins.workflows.models import DueStep, Enrolment, StepRun, Workflow
from plugins.workflows.tests.support import run_due, site, template, workflow

STEPS = ("s1", "s2", "s3", "s4")  # wait, email and tag, end: each ran once per enrolment
TAG = "dripped"
# Held while a periodic run goes on: one per slot, as `workflows.run_due` may run 4 at once.
RUN_DUE_LOCKS = ["magnet:running:workflows.run_due" + (f":{slot}" if slot else "")
                 for slot in range(4)]


def drip(app: Any, name: str = "Drip", template_name: str = "Welcome",
         tag_first: bool = False) -> int:
    """Wait a minute, send an email, tag (or tag, then send), end."""
    email = {"kind": "send_email", "template_id": template(app, template_name)}
    tag = {"kind": "tag", "action": "add", "tag": TAG}
    first, second = (tag, email) if tag_first else (email, tag)
    return workflow(app, name, {"kind": "manual"}, {"start": "s1", "steps": {
        "s1": {"kind": "wait", "mode": "duration", "minutes": 1, "next": "s2"},
        "s2": {**first, "next": "s3"},
        "s3": {**second, "next": "s4"},
        "s4": {"kind": "end"},
    }})


def crowd(app: Any, count: int, prefix: str = "p") -> list[int]:
    with app.app_context(), write():
        return [contacts.upsert(f"{prefix}{n}@example.com", {"first_name": f"P{n}"})[0].id
                for n in range(count)]


def enrol(app: Any, workflow_id: int, ids: list[int]) -> None:
    with app.app_context():
        result = manual.enrol_contacts(db.session.get(Workflow, workflow_id), ids, "a test")
    assert result.enrolled == len(ids)


def wait_is_over(app: Any) -> int:
    """End every wait now, in the database (the workers' clocks are their own)."""
    with app.app_context(), write() as session:
        return session.execute(update(DueStep).values(
            due_at=utcnow() - timedelta(seconds=1))).rowcount


def tagged(app: Any) -> tuple[list[int], Counter[int]]:
    """Who has the tag, and how many `tag_added` events each has on their timeline."""
    with app.app_context():
        having = sorted(db.session.scalars(select(ContactTag.contact_id).join(
            Tag, Tag.id == ContactTag.tag_id).where(Tag.name == TAG)))
        announced = Counter(
            a.contact_id for a in db.session.scalars(select(Activity).where(
                Activity.type == "tag_added")) if a.properties.get("tag") == TAG)
        return having, announced


def batches(app: Any) -> int:
    """How many batches ran steps (each stamps its history rows with its own moment)."""
    with app.app_context():
        return db.session.scalar(select(func.count(func.distinct(StepRun.at))))


def completed(app: Any) -> int:
    with app.app_context():
        found = db.session.scalar(select(func.count()).select_from(Enrolment).where(
            Enrolment.status == "completed"))
        db.session.rollback()
        return found


def ledger(app: Any) -> Counter[str]:
    with app.app_context():
        found = Counter(db.session.scalars(select(MailSend.status)))
        db.session.rollback()
        return found


def step_runs(app: Any) -> Counter[tuple[int, str]]:
    with app.app_context():
        return Counter((e, step) for e, step in db.session.execute(
            select(StepRun.enrolment_id, StepRun.step)))


def received(sink: Any) -> Counter[str]:
    return Counter(message["To"] for message in sink.messages)


def addresses(count: int, prefix: str = "p") -> list[str]:
    return sorted(f"{prefix}{n}@example.com" for n in range(count))


def assert_each_ran_once(app: Any, ids: list[int]) -> None:
    """Every enrolment completed, with each step once in its history, one ledger row each,
    and the tag added once (one `tag_added` event each)."""
    with app.app_context():
        enrolments = {e: c for e, c in db.session.execute(select(
            Enrolment.id, Enrolment.contact_id).where(Enrolment.status == "completed"))}
        assert sorted(enrolments.values()) == sorted(ids)
        history = step_runs(app)
        assert set(history.values()) == {1}
        assert sorted(history) == sorted((e, step) for e in enrolments for step in STEPS)
        sends = [(c, o) for c, o in db.session.execute(
            select(MailSend.contact_id, MailSend.occurrence))]
        assert sorted(sends) == sorted((c, f"e{e}") for e, c in enrolments.items())
        having, announced = tagged(app)
        assert having == sorted(ids)
        assert sorted(announced) == sorted(ids) and set(announced.values()) == {1}
        assert db.session.scalar(select(func.count()).select_from(DueStep)) == 0


# --- two worker processes ----------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.both_backends
def test_two_workers_run_each_step_once_and_send_each_email_once(make_app, smtp_server):
    """The periodic `workflows.run_due` runs at most four at once (`engine.jobs.runner` holds
    a lock per slot while a run goes on), and one run could take the whole crowd in one batch.
    So here every slot's lock is held, as long runs elsewhere would hold them (with only the
    first held, a periodic run in another slot took the whole crowd now and then), and both
    workers are handed small batches (`runner.run_batch` jobs): the two processes claim due
    rows at the same moment. Then the periodic runs take over again, and the two share the
    sending."""
    count = 300
    app = site(make_app, smtp_server)
    workers = [start_worker(app) for _ in range(2)]  # running while the crowd is enrolled
    try:
        flow = drip(app)
        ids = crowd(app, count)
        enrol(app, flow, ids)
        with app.app_context():
            redis = connection()  # each taken once no periodic run holds it: none starts now
            for lock in RUN_DUE_LOCKS:
                assert wait_until(lambda lock=lock: redis.set(lock, "1", nx=True, ex=60), 30)
            assert wait_is_over(app) == count
            queue = Queue("default", connection=redis)
            for _ in range(8):
                queue.enqueue(runner.run_batch, 40)
            ran = wait_until(lambda: completed(app) == count, 60)
            redis.delete(*RUN_DUE_LOCKS)
        done = ran and wait_until(lambda: ledger(app) == {"sent": count}
                                  and len(smtp_server.messages) >= count, 90)
        time.sleep(1)  # a duplicate would come right after the last send
    finally:
        errors = [stop_worker(worker) for worker in workers]
    assert done, (completed(app), ledger(app), len(smtp_server.messages), errors)
    assert batches(app) >= count // 40  # the small batches ran them, not one big run
    got = received(smtp_server)
    assert sorted(got) == addresses(count) and set(got.values()) == {1}
    assert_each_ran_once(app, ids)
    assert not any("database is locked" in text for text in errors), errors


@pytest.mark.slow
def test_a_worker_killed_mid_send_loses_nobody_and_duplicates_at_most_one(make_app,
                                                                          smtp_server):
    """A worker runs the steps, then is killed with SIGKILL while it sends (a slow server,
    50 ms a message). A worker started afterwards, once the dead one's claims are stale, sends
    what it left: nobody is lost, and only the message in flight can arrive twice."""
    count = 300  # two ledger batches: 250 and 50
    app = site(make_app, smtp_server)
    flow = drip(app)
    ids = crowd(app, count)
    enrol(app, flow, ids)
    wait_is_over(app)
    smtp_server.delay = 0.05
    victim = start_worker(app)
    try:
        assert wait_until(lambda: len(smtp_server.messages) >= 40, 60), "nothing was sent"
    finally:
        stop_worker(victim, kill=True)
    assert completed(app) == count  # the steps ran, and committed, before the sending began
    left = ledger(app)
    assert left["sending"] > 0 and left["sent"] < count, left  # the kill landed mid-send
    smtp_server.delay = 0.0
    age_claims(app)
    fresh = start_worker(app)
    try:
        done = wait_until(lambda: ledger(app) == {"sent": count}
                          and len(smtp_server.messages) >= count, 60)
        time.sleep(1)  # a second copy would come right after the last send
    finally:
        errors = stop_worker(fresh)
    assert done, (ledger(app), len(smtp_server.messages), errors)
    got = received(smtp_server)
    assert sorted(got) == addresses(count)  # nobody lost
    assert sum(got.values()) - count <= 1  # at most the message in flight, once
    assert_each_ran_once(app, ids)


# --- overlapping runs in one process -----------------------------------------------------------

@pytest.mark.both_backends
def test_two_overlapping_runs_share_the_due_steps_without_running_one_twice(
        make_app, smtp_server, clock):
    """Two threads claim batches at the same moment (SQLite: one waits for the other's write
    lock; PostgreSQL: SKIP LOCKED hands each other rows): every step runs once, and each email
    is queued once in the ledger (that the ledger sends each once is the other tests' part)."""
    count = 120
    app = site(make_app, smtp_server)
    flow = drip(app)
    ids = crowd(app, count)
    enrol(app, flow, ids)
    clock.advance(minutes=2)
    start, ran, failures = threading.Barrier(2), [], []

    def run() -> None:
        try:
            with app.app_context():
                start.wait(10)
                while batch := runner.run_batch(limit=15):
                    ran.append(batch)
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert sum(ran) == count and len(ran) >= count // 15
    assert ledger(app) == {"queued": count}
    assert_each_ran_once(app, ids)
    assert run_due(app) == 0


# --- a step that fails -------------------------------------------------------------------------

def delete_template(app: Any, name: str) -> dict[str, Any]:
    """Delete an email template a workflow step sends; returns it, to put it back."""
    with app.app_context(), write() as session:
        gone = session.scalar(select(EmailTemplate).where(EmailTemplate.name == name))
        session.delete(gone)
        return {"id": gone.id, "name": gone.name, "subject": gone.subject, "body": gone.body}


def put_back(app: Any, saved: dict[str, Any]) -> None:
    with app.app_context(), write() as session:
        session.add(EmailTemplate(**saved))


def enrolments_of(workflow_id: int) -> list[Enrolment]:
    return list(db.session.scalars(select(Enrolment).where(
        Enrolment.workflow_id == workflow_id)))


def test_a_failing_step_is_retried_later_and_does_not_hold_up_the_others(
        make_app, smtp_server, clock, work):
    """The template of one workflow's email step is deleted: its enrolments wait, saying why,
    and are tried again after `RETRY_AFTER`; another workflow's, in the same batch, go on."""
    app = site(make_app, smtp_server)
    broken, fine = drip(app, "Broken", "Gone soon"), drip(app, "Fine", "Kept")
    gone_ids, kept_ids = crowd(app, 3, prefix="gone"), crowd(app, 3, prefix="kept")
    enrol(app, broken, gone_ids)
    enrol(app, fine, kept_ids)
    saved = delete_template(app, "Gone soon")
    clock.advance(minutes=2)
    assert run_due(app) == 6  # one batch, both workflows
    failed_at = clock.now()
    work(app)
    assert sorted(received(smtp_server)) == addresses(3, "kept")  # the others went on
    assert completed(app) == 3
    with app.app_context():
        held = list(db.session.scalars(select(DueStep).where(DueStep.workflow_id == broken)))
        assert sorted(row.contact_id for row in held) == sorted(gone_ids)
        for row in held:  # the enrolment's whole run is undone: it is retried from the wait
            assert (row.step, row.waiting) == ("s1", True)
            assert row.held == (f"failed, retried: email template {saved['id']} "
                                "no longer exists")
            assert abs(row.due_at - (failed_at + runner.RETRY_AFTER)) < timedelta(seconds=5)
        waiting = {e.id: (e.status, e.step) for e in enrolments_of(broken)}
        assert set(waiting.values()) == {("active", "s1")}
        assert [key for key in step_runs(app) if key[0] in waiting] == []
    put_back(app, saved)
    clock.advance(minutes=5)
    assert run_due(app) == 0  # not before its retry time
    clock.advance(minutes=6)
    assert run_due(app) == 3
    assert run_due(app) == 0
    work(app)
    got = received(smtp_server)
    assert sorted(got) == addresses(3, "gone") + addresses(3, "kept")
    assert set(got.values()) == {1}
    assert_each_ran_once(app, gone_ids + kept_ids)


def test_a_run_undone_by_a_failing_step_leaves_no_tag_and_no_event(make_app, smtp_server,
                                                                    clock, work):
    """The workflow tags, then sends with a template that is gone: the whole run is undone,
    the tag and its event with it, and the retry tags once."""
    app = site(make_app, smtp_server)
    broken = drip(app, "Tag first", "Gone soon", tag_first=True)
    ids = crowd(app, 2)
    enrol(app, broken, ids)
    saved = delete_template(app, "Gone soon")
    clock.advance(minutes=2)
    assert run_due(app) == 2
    assert tagged(app) == ([], Counter())
    put_back(app, saved)
    clock.advance(minutes=11)
    assert run_due(app) == 2
    work(app)
    assert sorted(received(smtp_server)) == addresses(2)
    assert_each_ran_once(app, ids)
