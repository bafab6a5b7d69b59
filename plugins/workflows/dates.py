"""Date-field triggers (birthdays, renewals): each contact's next moment, kept in a timer row.

When a workflow with a date-field trigger is activated or its trigger changes, one job
(`workflows.date_timers`) computes every contact's next moment once, a range of contacts at a
time; from then on a contact's timer moves only when their date field changes (a
`field_changed` event), and the runner enrols the contacts whose moment has come and sets their
next one (a year on, for yearly triggers). No job ever looks through contacts to find whose day
it is.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select

from engine.contacts.models import Contact
from engine.contacts.store import dialect_insert
from engine.contacts.timezones import site_zone, zone_of
from engine.db import db, is_sqlite, utcnow, write
from engine.jobs import outbox
from plugins.workflows import runner, timing
from plugins.workflows.models import DateTimer, Workflow

CHUNK = 5_000  # contacts per transaction when timers are rebuilt
TIMERS = DateTimer.__table__


def queue_rebuild(workflow_id: int) -> None:
    """After a workflow's trigger or status changed (inside or outside a `write()`)."""
    with write():
        outbox.add("workflows.date_timers", workflow_id=workflow_id)


def _date_workflow(workflow: Workflow | None) -> bool:
    return (workflow is not None and workflow.status in ("active", "paused")
            and workflow.trigger.get("kind") == "date_field")


def rebuild(workflow_id: int) -> int:
    """Every contact's next moment for this workflow (none when it is no longer a date-field
    workflow); returns how many timers are set."""
    with write():
        db.session.execute(delete(DateTimer).where(DateTimer.workflow_id == workflow_id))
        workflow = db.session.get(Workflow, workflow_id)
        if not _date_workflow(workflow):
            return 0
        trigger = dict(workflow.trigger)
    total, after, zone = 0, 0, None
    while True:
        with write() as session:
            zone = zone or site_zone()
            contacts = list(session.scalars(select(Contact).where(
                Contact.id > after, Contact.status == "active").order_by(Contact.id)
                .limit(CHUNK)))
            if not contacts:
                return total
            after, now = contacts[-1].id, utcnow()
            rows = []
            for contact in contacts:
                moment = timing.next_date_moment((contact.custom or {}).get(trigger["field"]),
                                                 trigger, now, zone_of(contact, zone))
                if moment is not None:
                    rows.append({"workflow_id": workflow_id, "contact_id": contact.id,
                                 "due_at": moment})
            if rows:
                session.execute(_upsert(), rows)
            total += len(rows)


def _upsert() -> Any:
    insert = dialect_insert(db.session.get_bind().dialect.name)(TIMERS)
    return insert.on_conflict_do_update(index_elements=["workflow_id", "contact_id"],
                                        set_={"due_at": insert.excluded.due_at})


def fields_changed(run: runner.Run, workflows: list[Workflow],
                   batch: list[dict[str, Any]]) -> None:
    """Move the timers of contacts whose date field changed in this batch."""
    by_field: dict[str, list[Workflow]] = {}
    for workflow in workflows:
        if workflow.trigger.get("kind") == "date_field":
            by_field.setdefault(workflow.trigger["field"], []).append(workflow)
    if not by_field:
        return
    for event in batch:
        props = event.get("properties") or {}
        if event["type"] != "field_changed" or props.get("field") not in by_field:
            continue
        contact = run.contact(event["contact_id"])
        if contact is None:
            continue
        for workflow in by_field[props["field"]]:
            set_timer(workflow, contact, run.now, run.site_zone)


def set_timer(workflow: Workflow, contact: Contact, after: Any, site: Any) -> None:
    moment = timing.next_date_moment((contact.custom or {}).get(workflow.trigger["field"]),
                                     workflow.trigger, after, zone_of(contact, site))
    if moment is None:
        db.session.execute(delete(DateTimer).where(DateTimer.workflow_id == workflow.id,
                                                   DateTimer.contact_id == contact.id))
    else:
        db.session.execute(_upsert(), [{"workflow_id": workflow.id, "contact_id": contact.id,
                                        "due_at": moment}])


def run_timers(limit: int = runner.BATCH) -> int:
    """Enrol the contacts whose date has come (one batch); returns how many timers ran.
    Asked first with a plain read: `workflows.run_due` asks after every batch of due steps,
    and a write transaction that finds nothing still waits its turn for SQLite's lock."""
    first = db.session.execute(_due_timers(utcnow()).with_only_columns(DateTimer.id)
                               .limit(1)).first()
    if first is None:
        return 0
    with write():
        run = runner.Run(now=utcnow())
        query = _due_timers(run.now).order_by(DateTimer.due_at).limit(limit)
        if not is_sqlite():
            query = query.with_for_update(skip_locked=True, of=DateTimer)
        timers = list(db.session.scalars(query))
        if not timers:
            return 0
        run.load_contacts([t.contact_id for t in timers])
        for timer in timers:
            workflow = run.workflow(timer.workflow_id)
            contact = run.contact(timer.contact_id)
            if contact is None or not _date_workflow(workflow):
                db.session.delete(timer)
                continue
            field = workflow.trigger["field"]
            runner.enrol(run, workflow, contact.id, f"the date in {field} came round",
                         start=False)
            moment = timing.next_date_moment((contact.custom or {}).get(field),
                                             workflow.trigger, run.now,
                                             zone_of(contact, run.site_zone))
            if moment is None:
                db.session.delete(timer)
            else:
                timer.due_at = moment
        runner.start_all(run)
        runner.flush(run)
        return len(timers)


def _due_timers(now: Any) -> Any:
    return (select(DateTimer).join(Workflow, Workflow.id == DateTimer.workflow_id)
            .where(DateTimer.due_at <= now, Workflow.status == "active"))


def count(workflow_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(DateTimer).where(
        DateTimer.workflow_id == workflow_id)) or 0
