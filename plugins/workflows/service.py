"""Creating, editing, publishing, pausing and resuming workflows - the admin's and the CLI's
one way in, so each rule lives here once.

Editing a live workflow never strands anyone. The builder edits the `draft`; publishing makes
it the next version. Every active enrolment moves onto the new version: those at a step that
still exists stay where they are; those at a step that was removed go to the step the marketer
picked for it (`moves`), or finish if the marketer chose to end them there. Each enrolment
records the version it runs, and each history row the version its step ran under.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update

from engine.db import db, utcnow, write
from plugins.workflows import dates
from plugins.workflows import definition as wf_definition
from plugins.workflows.definition import WorkflowError
from plugins.workflows.models import (
    DueStep,
    Enrolment,
    StepRun,
    Workflow,
    WorkflowVersion,
)

END = ""  # in `moves`: finish the enrolments waiting at a removed step


def by_name(name: str) -> Workflow | None:
    return db.session.scalar(select(Workflow).where(Workflow.name == name.strip()))


def all_workflows() -> list[Workflow]:
    return list(db.session.scalars(select(Workflow).where(Workflow.status != "archived")
                                   .order_by(Workflow.name)))


def _clean_name(name: str, workflow_id: int | None) -> str:
    name = " ".join((name or "").split())[:200]
    if not name:
        raise WorkflowError("Give the workflow a name.")
    same = db.session.scalar(select(Workflow.id).where(Workflow.name == name))
    if same is not None and same != workflow_id:
        raise WorkflowError(f"A workflow named “{name}” exists already.")
    return name


def create(name: str, *, trigger: dict[str, Any], rules: dict[str, Any] | None = None,
           steps: dict[str, Any] | None = None, description: str = "", template: str = "",
           by: str = "") -> Workflow:
    """A new workflow, in draft (nothing runs until it is activated)."""
    with write() as session:
        workflow = Workflow(
            name=_clean_name(name, None), description=(description or "").strip()[:2000],
            trigger=wf_definition.check_trigger(trigger),
            rules=wf_definition.check_rules(rules or {}),
            draft=wf_definition.check(steps) if steps else {"start": "", "steps": {}},
            status="draft", version=0, template=template, updated_by=by,
            created_at=utcnow(), updated_at=utcnow())
        session.add(workflow)
        session.flush()
    return workflow


def update_settings(workflow: Workflow, *, name: str, description: str,
                    trigger: dict[str, Any], rules: dict[str, Any], by: str = "") -> Workflow:
    """Name, trigger and rules take effect at once (they are not versioned: they decide who
    comes in and when people leave, not where enrolled people are)."""
    with write() as session:
        workflow = session.get(Workflow, workflow.id)
        workflow.name = _clean_name(name, workflow.id)
        workflow.description = (description or "").strip()[:2000]
        workflow.trigger = wf_definition.check_trigger(trigger)
        workflow.rules = wf_definition.check_rules(rules)
        workflow.updated_at, workflow.updated_by = utcnow(), by
    _after_change(workflow)
    return workflow


def save_draft(workflow: Workflow, steps: dict[str, Any], by: str = "") -> Workflow:
    """Store the builder's draft of the steps (checked: a broken draft is refused)."""
    cleaned = wf_definition.check(steps)
    with write() as session:
        workflow = session.get(Workflow, workflow.id)
        workflow.draft, workflow.updated_at, workflow.updated_by = cleaned, utcnow(), by
    return workflow


def current(workflow: Workflow) -> dict[str, Any]:
    """The published steps enrolments run now (the draft before the first publication)."""
    if not workflow.version:
        return workflow.draft
    return definition_of(workflow.id, workflow.version)


def definition_of(workflow_id: int, version: int) -> dict[str, Any]:
    found = db.session.scalar(select(WorkflowVersion.definition).where(
        WorkflowVersion.workflow_id == workflow_id, WorkflowVersion.version == version))
    return found or {"start": "", "steps": {}}


def has_unpublished(workflow: Workflow) -> bool:
    return bool(workflow.draft.get("steps")) and (
        not workflow.version or workflow.draft != current(workflow))


def stranded(workflow: Workflow) -> dict[str, int]:
    """Steps of the published version that the draft removes, with how many contacts are
    there now: the marketer picks where they go before publishing."""
    if not workflow.version:
        return {}
    removed = set(current(workflow).get("steps", {})) - set(workflow.draft.get("steps", {}))
    if not removed:
        return {}
    rows = db.session.execute(select(Enrolment.step, func.count()).where(
        Enrolment.workflow_id == workflow.id, Enrolment.status == "active",
        Enrolment.step.in_(removed)).group_by(Enrolment.step)).all()
    return {step: count for step, count in rows if count}


def publish(workflow: Workflow, moves: dict[str, str] | None = None, *, by: str = "",
            activate: bool = True) -> Workflow:
    """Make the draft the next version and move every active enrolment onto it. `moves` maps
    each removed step that has contacts to a step of the new version (or `END`)."""
    draft = wf_definition.check(workflow.draft)
    moves = dict(moves or {})
    waiting = stranded(workflow)
    for step in waiting:
        if step not in moves:
            raise WorkflowError(f"{waiting[step]} contact(s) are at step {step}, which this "
                                "version removes: say where they go.")
        if moves[step] != END and moves[step] not in draft["steps"]:
            raise WorkflowError(f"Step {moves[step]} is not in the new version.")
    now = utcnow()
    with write() as session:
        workflow = session.get(Workflow, workflow.id)
        version = workflow.version + 1
        session.add(WorkflowVersion(workflow_id=workflow.id, version=version, definition=draft,
                                    published_at=now, published_by=by))
        workflow.version, workflow.draft = version, draft
        if activate and workflow.status == "draft":
            workflow.status = "active"
        workflow.updated_at, workflow.updated_by = now, by
        for old, new in moves.items():
            if old not in waiting:
                continue
            if new == END:
                _finish_at(session, workflow.id, old, "completed",
                           "its step was removed from the workflow")
            else:
                ids = select(Enrolment.id).where(Enrolment.workflow_id == workflow.id,
                                                 Enrolment.status == "active",
                                                 Enrolment.step == old)
                session.execute(update(DueStep).where(DueStep.enrolment_id.in_(ids)).values(
                    step=new, due_at=now, waiting=False, held=""))
                session.execute(update(Enrolment).where(Enrolment.id.in_(ids)).values(
                    step=new, step_at=now))
        session.execute(update(Enrolment).where(
            Enrolment.workflow_id == workflow.id, Enrolment.status == "active")
            .values(version=version))
    _after_change(workflow)
    return workflow


def _finish_at(session: Any, workflow_id: int, step: str, status: str, reason: str) -> None:
    ids = list(session.scalars(select(Enrolment.id).where(
        Enrolment.workflow_id == workflow_id, Enrolment.status == "active",
        Enrolment.step == step)))
    if ids:
        session.execute(delete(DueStep).where(DueStep.enrolment_id.in_(ids)))
        session.execute(update(Enrolment).where(Enrolment.id.in_(ids)).values(
            status=status, step="", exit_reason=reason, finished_at=utcnow()))


def pause(workflow: Workflow, by: str = "") -> Workflow:
    """Hold everyone in place: due steps wait, triggers enrol nobody, until resumed."""
    with write() as session:
        workflow = session.get(Workflow, workflow.id)
        if workflow.status == "active":
            workflow.status, workflow.paused_at = "paused", utcnow()
            workflow.updated_at, workflow.updated_by = utcnow(), by
    return workflow


def resume(workflow: Workflow, by: str = "") -> Workflow:
    """Steps that came due while paused run now; emails among them still wait for the
    workflow's sending hours (`steps.send_email`), so resuming sends no burst at night."""
    with write() as session:
        workflow = session.get(Workflow, workflow.id)
        if workflow.status == "paused":
            workflow.status, workflow.paused_at = "active", None
            workflow.updated_at, workflow.updated_by = utcnow(), by
    _after_change(workflow)
    return workflow


def archive(workflow: Workflow, by: str = "") -> Workflow:
    """Stop it for good: active enrolments finish ("the workflow was archived")."""
    with write() as session:
        workflow = session.get(Workflow, workflow.id)
        ids = list(session.scalars(select(Enrolment.id).where(
            Enrolment.workflow_id == workflow.id, Enrolment.status == "active")))
        session.execute(delete(DueStep).where(DueStep.workflow_id == workflow.id))
        if ids:
            session.execute(update(Enrolment).where(Enrolment.id.in_(ids)).values(
                status="exited", step="", exit_reason="the workflow was archived",
                finished_at=utcnow()))
        workflow.status, workflow.updated_at, workflow.updated_by = "archived", utcnow(), by
    _after_change(workflow)
    return workflow


def _after_change(workflow: Workflow) -> None:
    """Keep what depends on the trigger in step: the date timers of date-field triggers."""
    dates.queue_rebuild(workflow.id)


def step_counts(workflow: Workflow) -> dict[str, dict[str, int]]:
    """Per step: contacts at it now (`waiting`), who passed it (`passed`), and of those, how
    many reached a goal afterwards (`converted`)."""
    counts: dict[str, dict[str, int]] = {}

    def slot(step: str) -> dict[str, int]:
        return counts.setdefault(step, {"waiting": 0, "passed": 0, "converted": 0})

    for step, n in db.session.execute(select(Enrolment.step, func.count()).where(
            Enrolment.workflow_id == workflow.id, Enrolment.status == "active",
            Enrolment.test.is_(False)).group_by(Enrolment.step)):
        slot(step)["waiting"] = n
    for step, n, converted in db.session.execute(
            select(StepRun.step, func.count(), func.count(Enrolment.converted_at))
            .join(Enrolment, Enrolment.id == StepRun.enrolment_id)
            .where(StepRun.workflow_id == workflow.id, Enrolment.test.is_(False))
            .group_by(StepRun.step)):
        slot(step)["passed"], slot(step)["converted"] = n, converted
    return counts


def totals(workflow: Workflow) -> dict[str, int]:
    rows = dict(db.session.execute(select(Enrolment.status, func.count()).where(
        Enrolment.workflow_id == workflow.id, Enrolment.test.is_(False))
        .group_by(Enrolment.status)).all())
    converted = db.session.scalar(select(func.count()).where(
        Enrolment.workflow_id == workflow.id, Enrolment.test.is_(False),
        Enrolment.converted_at.is_not(None))) or 0
    return {"active": rows.get("active", 0), "completed": rows.get("completed", 0),
            "exited": rows.get("exited", 0), "converted": converted,
            "total": sum(rows.values())}


def enrolments_of(contact_id: int) -> list[tuple[Enrolment, Workflow]]:
    """A contact's enrolments, newest first, with their workflows (the contact page)."""
    return [(row[0], row[1]) for row in db.session.execute(
        select(Enrolment, Workflow).join(Workflow, Workflow.id == Enrolment.workflow_id)
        .where(Enrolment.contact_id == contact_id).order_by(Enrolment.id.desc()))]


def history(enrolment_id: int) -> list[StepRun]:
    return list(db.session.scalars(select(StepRun).where(StepRun.enrolment_id == enrolment_id)
                                   .order_by(StepRun.at, StepRun.id)))


def due_of(enrolment_id: int) -> DueStep | None:
    return db.session.scalar(select(DueStep).where(DueStep.enrolment_id == enrolment_id))


def next_due(workflow_id: int) -> datetime | None:
    return db.session.scalar(select(func.min(DueStep.due_at)).where(
        DueStep.workflow_id == workflow_id))
