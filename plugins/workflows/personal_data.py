"""Where the workflows plugin keeps data about people: their enrolments and step history."""
from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from engine.contacts.gdpr import Person, PersonalData
from engine.db import db
from plugins.workflows.models import DateTimer, DueStep, Enrolment, StepRun, Workflow


def _export(person: Person) -> list[dict[str, Any]]:
    rows = db.session.execute(select(Enrolment, Workflow.name).join(
        Workflow, Workflow.id == Enrolment.workflow_id).where(
        Enrolment.contact_id.in_(person.contact_ids)).order_by(Enrolment.id)).all()
    out = []
    for enrolment, name in rows:
        steps = db.session.scalars(select(StepRun).where(StepRun.enrolment_id == enrolment.id)
                                   .order_by(StepRun.id))
        out.append({"workflow": name, "status": enrolment.status, "reason": enrolment.reason,
                    "entered_at": enrolment.entered_at.isoformat(),
                    "finished_at": enrolment.finished_at.isoformat()
                    if enrolment.finished_at else None,
                    "exit_reason": enrolment.exit_reason,
                    "steps": [{"step": s.step, "kind": s.kind, "outcome": s.outcome,
                               "at": s.at.isoformat()} for s in steps]})
    return out


def _erase(person: Person) -> None:
    ids = list(person.contact_ids)
    theirs = select(Enrolment.id).where(Enrolment.contact_id.in_(ids))
    db.session.execute(delete(StepRun).where(StepRun.enrolment_id.in_(theirs)))
    db.session.execute(delete(DueStep).where(DueStep.enrolment_id.in_(theirs)))
    db.session.execute(delete(Enrolment).where(Enrolment.contact_id.in_(ids)))
    db.session.execute(delete(DateTimer).where(DateTimer.contact_id.in_(ids)))


enrolments = PersonalData("workflows", _export, _erase)
