"""What the newsletters tests share: a site sending to a sink, people on lists, a template,
campaigns saved as an editor would, and the tick run as a worker would."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from engine.contacts import service as contacts
from engine.db import db, write
from engine.mail.models import EmailTemplate, Mailing, MailSend
from engine.testing import run_jobs
from plugins.newsletters import jobs, service
from plugins.newsletters.models import Recipient

SITE = "https://shop.example.com"


def site(make_app: Any, smtp_server: Any, **config: Any) -> Any:
    return make_app(**smtp_server.config, SITE_URL=SITE,
                    MAIL_FROM="Acme <hello@acme.example>", **config)


def people(app: Any, count: int, list_slug: str = "news", prefix: str = "p",
           **values: Any) -> list[int]:
    """`count` contacts subscribed to `list_slug`; their ids."""
    ids = []
    with app.app_context(), write():
        for n in range(count):
            contact, _, _ = contacts.upsert(f"{prefix}{n}@example.org",
                                            {"first_name": f"P{n}", **values})
            contacts.subscribe(contact, list_slug, source="test")
            ids.append(contact.id)
    return ids


def template(app: Any, name: str = "Monthly news", subject: str = "Our news",
             body: str = "Hello {{ contact.first_name | default('there') }}! "
                         "[See the offer](https://shop.example.com/offer)") -> int:
    with app.app_context(), write():
        found = EmailTemplate(name=name, subject=subject, body=body)
        db.session.add(found)
        db.session.flush()
        return found.id


def campaign(app: Any, template_id: int, **values: Any) -> int:
    fields = {"name": "November news", "template_id": template_id,
              "audience": {"lists": ["news"]}, **values}
    with app.app_context():
        return service.save(fields).id


def tick(app: Any) -> int:
    with app.app_context():
        return jobs.tick()


def send_all(app: Any) -> None:
    """A tick, then every queued job (the mail batches), then a tick to finish."""
    tick(app)
    run_jobs(app)
    tick(app)


def statuses(app: Any, campaign_id: int) -> dict[str, int]:
    with app.app_context():
        return dict(db.session.execute(select(Recipient.status, func.count()).where(
            Recipient.campaign_id == campaign_id).group_by(Recipient.status)).all())


def sent_to(app: Any) -> list[str]:
    """The addresses campaigns were sent to, sorted."""
    with app.app_context():
        return sorted(db.session.scalars(select(MailSend.email).join(
            Mailing, Mailing.id == MailSend.mailing_id).where(
            MailSend.status == "sent", Mailing.key.like("campaign:%"))))
