"""Running workflows: enrolling contacts, and running each due step exactly once.

Every active enrolment has one `DueStep` row: the step it runs next and when. A worker's
`workflows.run_due` job claims due rows in batches (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so
several workers take different rows; SQLite: its one write lock), and in ONE transaction per
batch runs each enrolment forward as far as it goes without waiting (a decision, a tag, an email
queued in the mail core's ledger, the next decision…), writes one history row per step run, and
replaces the due row with the next one. A worker killed mid-batch commits nothing: the rows are
claimed again, and nothing of the batch happened twice. History rows are unique per
(enrolment, step), so a step can never run twice for one enrolment; an email step's send is
keyed by the enrolment in the mail core's ledger, which sends it once (`engine.mail.sending`).

Enrolment happens as events are delivered (`triggers`): the contact's first steps run at once,
inside the delivery's transaction, so a trigger's first email is queued in the same commit.
"""
from __future__ import annotations

import gc
import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from engine import bulk, events
from engine.contacts import service as contacts_service
from engine.contacts import store
from engine.contacts.models import Contact
from engine.contacts.timezones import site_zone
from engine.db import db, utcnow, write
from engine.mail import sending
from engine.mail.models import EmailTemplate
from plugins.workflows import definition as wf_definition
from plugins.workflows import rows, steps
from plugins.workflows.conditions import mailing_key
from plugins.workflows.models import DueStep, Enrolment, StepRun, Workflow, WorkflowVersion

log = logging.getLogger("magnet.workflows")

BATCH = 500  # due rows per transaction
RETRY_AFTER = timedelta(minutes=10)  # a step that failed (its template is gone …) is retried
RUNS = StepRun.__table__


class AlreadyRan(Exception):
    """The step is in this enrolment's history already (a path joined one it took before)."""


@dataclass
class Item:
    """An enrolment about to run `key`; `due` is the due row that brought it there, if any."""

    enrolment: Enrolment | rows.EnrolmentRow
    key: str
    due: DueStep | rows.DueRow | None = None


@dataclass
class Run:
    """What one batch shares: workflows and versions read once, contacts read together, and
    the emails queued together per step at the end (one ledger INSERT per step)."""

    now: datetime
    workflows: dict[int, Workflow] = field(default_factory=dict)
    versions: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    contacts: dict[int, Contact] = field(default_factory=dict)
    emails: dict[tuple[int, str], list[tuple[int, str]]] = field(
        default_factory=lambda: defaultdict(list))
    history: list[dict[str, Any]] = field(default_factory=list)
    due_rows: dict[int, DueStep] = field(default_factory=dict)  # enrolment id -> its row
    ran: set[tuple[int, str]] | None = None  # (enrolment, step) pairs in the history, if known
    templates: dict[int, bool] = field(default_factory=dict)
    statements: dict[Any, Any] = field(default_factory=dict)  # conditions built once a batch
    answers: dict[tuple[int, str], bool] = field(default_factory=dict)  # conditions asked ahead
    # Contact changes gathered in a round and written together at its end (`apply_pending`):
    # {("tag" | "untag" | "join" | "leave", tag or list): {contact ids}}
    pending: dict[tuple[str, str], set[int]] = field(default_factory=lambda: defaultdict(set))
    starting: list[Item] = field(default_factory=list)  # enrolled, first steps not run yet
    recorded: list[dict[str, Any]] = field(default_factory=list)
    _zone: Any = None
    _fields: dict[str, Any] | None = None

    def workflow(self, workflow_id: int) -> Workflow:
        if workflow_id not in self.workflows:
            self.workflows[workflow_id] = db.session.get(Workflow, workflow_id)
        return self.workflows[workflow_id]

    def steps_of(self, enrolment: Enrolment) -> dict[str, Any]:
        """The steps of the version this enrolment runs."""
        return self._version(enrolment.workflow_id, enrolment.version)

    def steps_of_version(self, workflow: Workflow) -> dict[str, Any]:
        """The steps of the workflow's published version."""
        return self._version(workflow.id, workflow.version)

    def _version(self, workflow_id: int, version: int) -> dict[str, Any]:
        key = (workflow_id, version)
        if key not in self.versions:
            self.versions[key] = db.session.scalar(select(WorkflowVersion.definition).where(
                WorkflowVersion.workflow_id == workflow_id,
                WorkflowVersion.version == version)) or {"start": "", "steps": {}}
        return self.versions[key]

    def custom_fields(self) -> dict[str, Any]:
        if self._fields is None:
            self._fields = contacts_service.custom_fields()
        return self._fields

    def template_exists(self, template_id: int) -> bool:
        """Asked once per batch (the session holds rows only weakly: `session.get` would read
        the template again for every email)."""
        if template_id not in self.templates:
            self.templates[template_id] = db.session.get(EmailTemplate, template_id) is not None
        return self.templates[template_id]

    def contact(self, contact_id: int) -> Contact | None:
        if contact_id not in self.contacts:
            self.load_contacts([contact_id])
        return self.contacts.get(contact_id)

    def load_contacts(self, ids: list[int]) -> None:
        wanted = [i for i in ids if i not in self.contacts]
        for contact in db.session.scalars(select(Contact).where(Contact.id.in_(wanted))):
            self.contacts[contact.id] = contact

    @property
    def site_zone(self) -> Any:
        if self._zone is None:
            self._zone = site_zone()
        return self._zone

    def event(self, type_: str, enrolment: Enrolment, **properties: Any) -> None:
        workflow = self.workflow(enrolment.workflow_id)
        if enrolment.test:
            return
        self.recorded.append({"enrolment": enrolment.id, "type": type_,
                              "contact_id": enrolment.contact_id,
                              "occurred_at": self.now, "properties": {
                                  "workflow": workflow.name, "workflow_id": workflow.id,
                                  **properties}})


# --- enrolling ---------------------------------------------------------------------------------

def may_enrol(workflow: Workflow, contact_id: int, now: datetime) -> bool:
    """The workflow's re-enrolment rule: once ever, again N days after the last one began, or
    every time - and never twice at once."""
    last = db.session.execute(select(Enrolment.status, Enrolment.entered_at).where(
        Enrolment.workflow_id == workflow.id, Enrolment.contact_id == contact_id,
        Enrolment.test.is_(False)).order_by(Enrolment.id.desc()).limit(1)).first()
    return last is None or _again(workflow, last, now)


def enrol(run: Run, workflow: Workflow, contact_id: int, reason: str, *, test: bool = False,
          tester: str = "", check_rules: bool = True, start: bool = True) -> Enrolment | None:
    """Enrol one contact (inside `write()`) and run its first steps now - or, with
    `start=False`, with everyone enrolled in the same go (`start_all`); None when the rules
    say no (already in, enrolled before, not a live contact, workflow not active)."""
    if workflow.status != "active" or not workflow.version:
        return None
    contact = run.contact(contact_id)
    if contact is None or contact.status in ("merged", "erased"):
        return None
    if check_rules and not test and not may_enrol(workflow, contact_id, run.now):
        return None
    # A test run gives way: to the tester's next one, and to the contact coming in for real
    # (one active enrolment per contact and workflow, test or not).
    db.session.execute(delete(Enrolment).where(
        Enrolment.workflow_id == workflow.id, Enrolment.contact_id == contact_id,
        Enrolment.test.is_(True)))
    enrolment = Enrolment(workflow_id=workflow.id, contact_id=contact_id,
                          version=workflow.version, status="active", step="",
                          reason=reason[:300], entered_at=run.now, step_at=run.now,
                          test=test, tester=tester[:320])
    db.session.add(enrolment)
    db.session.flush()
    run.workflows.setdefault(workflow.id, workflow)
    run.event("workflow_entered", enrolment, reason=reason[:200])
    item = Item(enrolment, run.steps_of(enrolment).get("start", ""))
    if start:
        run_one(run, enrolment, item.key, None)
    else:
        run.starting.append(item)
    return enrolment


def enrol_many(run: Run, workflow: Workflow, contact_ids: list[int], reason: str,
               reasons: dict[int, str] | None = None) -> list[int]:
    """Enrol many contacts at once (inside `write()`), as `enrol` does one, in a few
    statements for all of them; their first steps run with `start_all`. `reasons`: a reason
    of its own for some contacts. Returns the contacts enrolled (the rules left the others
    out)."""
    reasons = reasons or {}
    if workflow.status != "active" or not workflow.version or not contact_ids:
        return []
    run.load_contacts(contact_ids)
    live = sorted({c for c in contact_ids if (run.contact(c) is not None
                                               and run.contact(c).status not in
                                               ("merged", "erased"))})
    last = db.session.execute(select(Enrolment.contact_id, Enrolment.status,
                                     Enrolment.entered_at).where(Enrolment.id.in_(
        select(func.max(Enrolment.id)).where(
            Enrolment.workflow_id == workflow.id, Enrolment.contact_id.in_(live),
            Enrolment.test.is_(False)).group_by(Enrolment.contact_id)))).all()
    refused = {row.contact_id for row in last if not _again(workflow, row, run.now)}
    chosen = [c for c in live if c not in refused]
    if not chosen:
        return []
    db.session.execute(delete(Enrolment).where(
        Enrolment.workflow_id == workflow.id, Enrolment.contact_id.in_(chosen),
        Enrolment.test.is_(True)))
    made = [Enrolment(workflow_id=workflow.id, contact_id=c, version=workflow.version,
                      status="active", step="", reason=reasons.get(c, reason)[:300],
                      entered_at=run.now,
                      step_at=run.now, test=False, tester="") for c in chosen]
    db.session.add_all(made)
    db.session.flush()
    run.workflows.setdefault(workflow.id, workflow)
    start = run.steps_of_version(workflow).get("start", "")
    for enrolment in made:
        run.event("workflow_entered", enrolment, reason=enrolment.reason[:200])
        run.starting.append(Item(enrolment, start))
    return chosen


def _again(workflow: Workflow, last: Any, now: datetime) -> bool:
    """Whether a contact whose latest enrolment is `last` may come in again (`may_enrol`)."""
    if last.status == "active":
        return False
    rule = workflow.rules.get("enrol", "once")
    if rule == "again":
        return now - last.entered_at >= timedelta(days=int(workflow.rules["again_days"]))
    return rule == "always"


def start_all(run: Run) -> None:
    """Run the first steps of everyone `enrol(start=False)` enrolled, together."""
    items, run.starting = run.starting, []
    run_items(run, items)


# --- running -----------------------------------------------------------------------------------

def advance(run: Run, enrolment: Enrolment, key: str, due: DueStep | None) -> None:
    """Run one enrolment from step `key` until it waits or finishes."""
    run_all(run, [Item(enrolment, key, due)])


def run_all(run: Run, items: list[Item]) -> None:
    """Run these enrolments forward until each waits or finishes, a step of all of them at a
    time: the conditions a round's decisions need are asked in one query per step, and the
    tags and lists its steps change are written together at its end, so a batch costs a few
    statements per step of the workflow, not per step of each contact."""
    frontier = items
    for _ in range(wf_definition.MAX_STEPS + 1):
        if not frontier:
            return
        steps.prepare(run, frontier)
        following = []
        for item in frontier:
            key = _step(run, item)
            if key is not None:
                following.append(Item(item.enrolment, key))
        apply_pending(run)
        frontier = following
    for item in frontier:
        finish(run, item.enrolment, "exited", "too many steps in one go")


def _step(run: Run, item: Item) -> str | None:
    """Run one step; the key of the next one ("" for the end), or None when the enrolment
    waits or has finished."""
    enrolment, key = item.enrolment, item.key
    if not key:
        finish(run, enrolment, "completed", "reached the end")
        return None
    step = run.steps_of(enrolment).get("steps", {}).get(key)
    if step is None:
        finish(run, enrolment, "exited", f"step {key} is not in version {enrolment.version}")
        return None
    outcome = steps.execute(run, enrolment, key, step, item.due)
    if outcome.hold_until is not None:
        hold(run, enrolment, key, outcome.hold_until, outcome.waiting, outcome.held,
             outcome.watching)
        return None
    _ran(run, enrolment, key, step, outcome.outcome, item.due)
    if outcome.finish:
        finish(run, enrolment, outcome.finish, outcome.reason)
        return None
    return outcome.next or ""


def apply_pending(run: Run) -> None:
    """Write the round's gathered contact changes: one statement per tag or list."""
    for (action, name), contact_ids in sorted(run.pending.items()):
        if action == "tag":
            store.tag_many(contact_ids, name)
        elif action == "untag":
            store.untag_many(contact_ids, name)
        elif action == "join":
            for contact_id in sorted(contact_ids):
                store.subscribe(contact_id, [name], source="workflow")
        else:
            for contact_id in sorted(contact_ids):
                store.unsubscribe(contact_id, [name])
    run.pending.clear()
    db.session.flush()


def _ran(run: Run, enrolment: Enrolment, key: str, step: dict[str, Any], outcome: str,
         due: DueStep | None) -> None:
    run.history.append({"enrolment_id": enrolment.id, "workflow_id": enrolment.workflow_id,
                        "version": enrolment.version, "step": key, "kind": step["kind"],
                        "outcome": outcome[:300], "due_at": due.due_at if due else run.now,
                        "at": run.now})
    if run.ran is not None:  # the batch knows its enrolments' history: check here, not by SQL
        if (enrolment.id, key) in run.ran:
            raise AlreadyRan(key)
        run.ran.add((enrolment.id, key))


def hold(run: Run, enrolment: Enrolment, key: str, until: datetime, waiting: bool,
         held: str, watching: bool = False) -> None:
    """Park the enrolment at `key` until `until` (the one due row of the enrolment)."""
    if enrolment.step != key:
        enrolment.step, enrolment.step_at = key, run.now
    row = run.due_rows.get(enrolment.id)
    if row is None and isinstance(enrolment, rows.EnrolmentRow):  # written with the batch
        row = rows.DueRow(None, enrolment.id, enrolment.workflow_id, enrolment.contact_id,
                          key, until)
        run.due_rows[enrolment.id] = row
    elif row is None:
        row = DueStep(enrolment_id=enrolment.id, workflow_id=enrolment.workflow_id,
                      contact_id=enrolment.contact_id)
        db.session.add(row)
        run.due_rows[enrolment.id] = row
    row.step, row.due_at, row.waiting, row.held = key, until, waiting, held[:200]
    row.watching = watching


def finish(run: Run, enrolment: Enrolment, status: str, reason: str) -> None:
    """The enrolment is over: completed (the end, or a goal that ends it) or exited."""
    enrolment.status, enrolment.step, enrolment.finished_at = status, "", run.now
    enrolment.exit_reason = reason[:300]
    row = run.due_rows.pop(enrolment.id, None)
    if isinstance(row, DueStep):  # a plain row of a batch is deleted with the batch's others
        db.session.delete(row)
    run.event("workflow_finished", enrolment, status=status, reason=reason[:200])


def write_history(run: Run) -> None:
    """Write the history rows one enrolment's run gathered. A row that exists already means a
    path joined a step this enrolment ran before: `AlreadyRan` (the caller's savepoint undoes
    the enrolment's run)."""
    db.session.flush()
    if run.history:
        try:
            with db.session.begin_nested():
                bulk.insert_rows(db.session.connection(), RUNS, run.history)
        except IntegrityError:
            raise AlreadyRan(run.history[0]["step"]) from None
        finally:
            run.history.clear()


def flush(run: Run) -> None:
    """Write what a batch gathered for all its enrolments: the emails into the mail ledger (one
    INSERT per email step, each recipient keyed by their enrolment, so it is sent once) and
    the events."""
    write_history(run)
    for (workflow_id, key), pairs in run.emails.items():
        template_id, subject = steps.email_settings(run, workflow_id, key)
        target = sending.mailing(mailing_key(workflow_id, key), template_id=template_id,
                                 subject=subject, marketing=True)
        sending.enqueue_each(target, pairs)
    run.emails.clear()
    if run.recorded:
        events.record_many([{k: v for k, v in row.items() if k != "enrolment"}
                            for row in run.recorded])
        run.recorded.clear()


def release(run: Run) -> None:
    """Let go of the contacts the run read (their changes are written): the delivery's other
    handlers, in the same session, then read them afresh rather than as this run saw them."""
    db.session.flush()
    for contact in run.contacts.values():
        if contact in db.session:
            db.session.expire(contact)


def run_batch(limit: int = BATCH) -> int:
    """Claim and run one batch of due steps; returns how many due rows it ran.

    The fast way first: every enrolment of the batch in one savepoint, their history checked
    in memory against one read of it, written with one INSERT. If anything fails, that
    savepoint is undone and the batch runs again the careful way, a savepoint per enrolment,
    so one failing step holds up nobody else. The due rows and enrolments are plain rows
    (`rows`): read with two statements, their changes written with a few at the end."""
    with write(), _no_gc_pauses():
        now = utcnow()
        batch = rows.claim(now, limit)
        if not batch.claimed:
            return 0
        live = []
        for due in batch.claimed:  # a row whose enrolment is over is deleted with the batch
            enrolment = batch.enrolments.get(due.enrolment_id)
            if enrolment is not None and enrolment.status == "active":
                live.append((enrolment, due))
        run = _batch_run(now, live)
        run_items(run, [Item(enrolment, due.step, due) for enrolment, due in live])
        flush(run)
        rows.write(batch, run.due_rows)
        return len(batch.claimed)


@contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """The cyclic garbage collector held off for one batch: its passes over a worker's heap
    (the app, the session, the batch's contacts) took a quarter to a third of a batch's time
    (`bench/workflows.py profile`). A batch's garbage is freed as it goes by reference
    counting; the collector runs again after it."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def run_items(run: Run, items: list[Item]) -> None:
    """Run enrolments the fast way - all together in one savepoint, their history checked in
    memory - and, if anything fails, undo that and run them the careful way: a savepoint
    each, so one failing step holds up nobody else."""
    if not items:
        return
    marks = (len(run.recorded), {k: len(v) for k, v in run.emails.items()})
    ran = set(run.ran) if run.ran is not None else None
    due_rows = dict(run.due_rows)
    values = rows.saved([*(item.enrolment for item in items), *due_rows.values()])
    savepoint = db.session.begin_nested()
    try:
        run_all(run, items)
        write_history(run)
        savepoint.commit()
        return
    except Exception:  # noqa: BLE001 - the careful way below finds and reports it
        savepoint.rollback()
        _forget(run, marks)
        run.ran = ran
        # As before the attempt: rows it deleted are back, rows it added are gone.
        rows.restore(values)
        run.due_rows = {k: row for k, row in due_rows.items()
                        if isinstance(row, rows.DueRow) or row in db.session}
    for item in items:
        run_one(run, item.enrolment, item.key, item.due)


def _batch_run(now: datetime, live: list[tuple[Enrolment, DueStep]]) -> Run:
    run = Run(now=now)
    run.load_contacts([due.contact_id for _e, due in live])
    run.due_rows = {enrolment.id: due for enrolment, due in live}
    run.ran = {(row.enrolment_id, row.step) for row in db.session.execute(
        select(StepRun.enrolment_id, StepRun.step).where(
            StepRun.enrolment_id.in_([e.id for e, _d in live])))}
    return run


def run_one(run: Run, enrolment: Enrolment, key: str, due: DueStep | None) -> None:
    """Run one enrolment forward from `key` in a savepoint: a step that fails (a deleted
    template, a contact whose values break it) is retried later and does not hold up the
    others; a step it ran before ends the enrolment."""
    marks = (len(run.recorded), {k: len(v) for k, v in run.emails.items()})
    had = run.due_rows.get(enrolment.id)
    values = rows.saved([enrolment, had])
    savepoint = db.session.begin_nested()
    try:
        advance(run, enrolment, key, due)
        write_history(run)
        savepoint.commit()
        return
    except AlreadyRan as exc:
        savepoint.rollback()
        _forget(run, marks)
        problem = None
        reason = f"step {exc} had run already"
    except Exception as exc:  # noqa: BLE001 - reported on the due row, retried
        savepoint.rollback()
        _forget(run, marks)
        log.exception("workflow step %s of enrolment %s failed", key, enrolment.id)
        problem, reason = exc, ""
    row = _as_before(run, enrolment, had, values)
    if problem is None:
        finish(run, enrolment, "completed", reason)
    elif row is not None:
        row.due_at, row.held = run.now + RETRY_AFTER, f"failed, retried: {problem}"[:200]
    else:  # a new enrolment whose first step failed: it waits at the start, retried
        hold(run, enrolment, key, run.now + RETRY_AFTER, False,
             f"failed, retried: {problem}")


def _as_before(run: Run, enrolment: Any, had: Any, values: list[Any]) -> Any:
    """The enrolment and its due row as before an undone run; returns the due row (None if
    it had none). A batch's plain rows get their saved values back; ORM rows are read again."""
    if isinstance(enrolment, rows.EnrolmentRow):
        rows.restore(values)
        run.due_rows.pop(enrolment.id, None)
        if had is not None:
            run.due_rows[enrolment.id] = had
        return had
    db.session.refresh(enrolment)
    row = run.due_rows.get(enrolment.id)
    if row is not None and row not in db.session:  # added by the run that was undone
        run.due_rows.pop(enrolment.id)
        return None
    if row is not None:
        db.session.refresh(row)
    return row


def _forget(run: Run, marks: tuple[int, dict[tuple[int, str], int]]) -> None:
    """Drop what an undone enrolment run had gathered for the batch."""
    run.history.clear()
    run.pending.clear()
    run.answers.clear()
    del run.recorded[marks[0]:]
    for key in list(run.emails):
        keep = marks[1].get(key, 0)
        if keep:
            del run.emails[key][keep:]
        else:
            del run.emails[key]
