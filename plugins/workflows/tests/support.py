"""What the workflows tests share: a site that sends mail to a sink, people, templates,
workflows saved as a marketer would, and running due steps as a worker would."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine import events
from engine.contacts import service as contacts
from engine.db import db, write
from engine.mail.models import EmailTemplate, MailSend
from engine.testing import deliver_events
from plugins.workflows import jobs, service
from plugins.workflows.models import Enrolment, StepRun, Workflow

SITE = "https://shop.example.com"


def site(make_app: Any, smtp_server: Any, **config: Any) -> Any:
    return make_app(**smtp_server.config, SITE_URL=SITE,
                    MAIL_FROM="Acme <hello@acme.example>", **config)


def person(app: Any, email: str, **values: Any) -> int:
    with app.app_context(), write():
        contact, _, _ = contacts.upsert(email, values)
        return contact.id


def template(app: Any, name: str, subject: str | None = None, body: str = "") -> int:
    with app.app_context(), write():
        found = db.session.scalar(select(EmailTemplate).where(EmailTemplate.name == name))
        if found is None:
            found = EmailTemplate(name=name, subject=subject or name,
                                  body=body or f"Hello {{{{ contact.first_name }}}}: {name}")
            db.session.add(found)
            db.session.flush()
        return found.id


def workflow(app: Any, name: str, trigger: dict[str, Any], steps: dict[str, Any],
             rules: dict[str, Any] | None = None, activate: bool = True) -> int:
    with app.app_context():
        made = service.create(name, trigger=trigger, rules=rules, steps=steps)
        if activate:
            service.publish(made)
        return made.id


def record(app: Any, type_: str, contact_id: int, **properties: Any) -> None:
    with app.app_context(), write():
        events.record(type_, contact_id=contact_id, properties=properties)
    deliver_events(app)


def run_due(app: Any) -> int:
    """What the periodic job does, here: run every due step and date timer."""
    with app.app_context():
        return jobs.run_due()


def tick(app: Any, clock: Any, **delta: float) -> int:
    clock.advance(**delta)
    ran = run_due(app)
    deliver_events(app)
    return ran


def enrolment(app: Any, workflow_id: int, contact_id: int) -> Enrolment | None:
    with app.app_context():
        found = db.session.scalar(select(Enrolment).where(
            Enrolment.workflow_id == workflow_id, Enrolment.contact_id == contact_id)
            .order_by(Enrolment.id.desc()))
        if found is not None:
            db.session.expunge(found)
        return found


def path(app: Any, workflow_id: int, contact_id: int) -> list[tuple[str, str]]:
    """The (step, outcome) history of a contact's latest enrolment."""
    found = enrolment(app, workflow_id, contact_id)
    if found is None:
        return []
    with app.app_context():
        return [(r.step, r.outcome) for r in db.session.scalars(
            select(StepRun).where(StepRun.enrolment_id == found.id).order_by(StepRun.id))]


def sends(app: Any, workflow_id: int | None = None) -> list[MailSend]:
    with app.app_context():
        rows = list(db.session.scalars(select(MailSend).order_by(MailSend.id)))
        for row in rows:
            db.session.expunge(row)
        return rows


def get_workflow(app: Any, workflow_id: int) -> Workflow:
    with app.app_context():
        found = db.session.get(Workflow, workflow_id)
        db.session.expunge(found)
        return found

