"""The hand-off to sales: when a contact reaches the hand-off stage, the salesperson assigned to
them (or the configured address) gets an email with the explanation of their scores and a link
to their page; a webhook, when configured, gets the same as JSON.

It follows the delivered `stage_changed` event, whoever changed the stage (scoring, an admin,
an import), and happens once per such event: the `Handoff` row is unique per event id, and the
email and the webhook's job are queued through the outbox only by the transaction that
inserted it, together with the delivery's mark. A poor fit is never handed off; its row says
so, for the contact's page.
"""
from __future__ import annotations

import logging
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import select, update

from engine import mail
from engine.contacts.models import Contact
from engine.contacts.service import normalise_email
from engine.contacts.store import ContactError
from engine.content.service import site_name
from engine.db import db, utcnow, write
from engine.jobs import job, outbox
from engine.web.links import contact_admin_url
from engine.web.outbound import OutboundRefused, post_json, worth_retrying
from plugins.scoring.explain import Explanation, explain
from plugins.scoring.models import ContactScore, Handoff
from plugins.scoring.sets import insert
from plugins.scoring.settings import settings

log = logging.getLogger("magnet.scoring")

POOR_FIT = "not handed off: poor fit"
NO_RECIPIENT = "no recipient configured"
H = Handoff.__table__


class WebhookFailed(RuntimeError):
    """The webhook answered with an error it may recover from; the outbox tries again."""


def reaches(old: str, new: str, stage: str) -> bool:
    """Whether a move from `old` to `new` reaches the hand-off `stage`: into it, or past it
    into sales-qualified from before it (a contact that jumps from lead to sales-qualified
    has reached marketing-qualified on the way)."""
    if new == stage:
        return True
    return (stage == "marketing_qualified" and new == "sales_qualified"
            and old not in ("marketing_qualified", "opportunity", "customer", "evangelist"))


def handle(events: list[dict[str, Any]]) -> int:
    """Hand off the contacts these `stage_changed` events bring to the hand-off stage (inside
    the delivery's `write()`); returns how many hand-offs were recorded now."""
    conf = settings()
    wanted = [e for e in events if e["type"] == "stage_changed" and e.get("contact_id")
              and reaches(str((e.get("properties") or {}).get("old") or ""),
                          str((e.get("properties") or {}).get("new") or ""),
                          conf["handoff_stage"])]
    if not wanted:
        return 0
    ids = sorted({int(e["contact_id"]) for e in wanted})
    contacts = {c.id: c for c in db.session.scalars(select(Contact).where(
        Contact.id.in_(ids), Contact.status.notin_(("merged", "erased"))))}
    poor = set(db.session.scalars(select(ContactScore.contact_id).where(
        ContactScore.contact_id.in_(ids), ContactScore.poor_fit.is_(True))))
    webhook = (conf.get("handoff_webhook") or "").strip()
    recorded = 0
    for event in wanted:
        contact = contacts.get(int(event["contact_id"]))
        if contact is None:
            continue
        stage = str(event["properties"]["new"])
        if contact.id in poor:
            recorded += _insert(event["id"], contact.id, stage, POOR_FIT) is not None
            continue
        to = recipient(contact, conf)
        sent_to = ", ".join([to] * bool(to) + ["webhook"] * bool(webhook)) or NO_RECIPIENT
        handoff_id = _insert(event["id"], contact.id, stage, sent_to)
        if handoff_id is None:
            continue  # this event was handed off already (a delivery run again)
        recorded += 1
        if to:
            explanation = explain(contact.id, history=False)
            mail.send(to, subject(contact, explanation), body(contact, explanation),
                      headers={"From": mail.sender(site_name())}, contact_id=contact.id)
        if webhook:
            outbox.add("scoring.post_webhook", handoff_id=handoff_id)
    return recorded


def _insert(event_id: int, contact_id: int, stage: str, sent_to: str) -> int | None:
    """The new Handoff row's id, or None when the event has one already."""
    statement = insert(H).on_conflict_do_nothing(
        index_elements=["event_id"]).returning(H.c.id)
    return db.session.execute(statement, {
        "event_id": int(event_id), "contact_id": contact_id, "stage": stage[:30],
        "sent_to": sent_to[:400], "created_at": utcnow()}).scalar()


def recipient(contact: Contact, conf: dict[str, Any]) -> str:
    """The salesperson's address in the contact's owner field when it is one, else the
    configured address, else ""."""
    field = (conf.get("owner_field") or "").strip()
    owner = (contact.custom or {}).get(field) if field else None
    if isinstance(owner, str) and owner.strip():
        try:
            return normalise_email(owner)
        except ContactError:
            pass
    fallback = (conf.get("handoff_email") or "").strip()
    if fallback:
        try:
            return normalise_email(fallback)
        except ContactError:
            return ""
    return ""


def _one_line(text: str) -> str:
    """Visitor-typed text fit for a header: control characters become spaces."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def display_name(contact: Contact) -> str:
    return _one_line(contact.name) or contact.email


def subject(contact: Contact, explanation: Explanation) -> str:
    return f"Sales-ready lead: {display_name(contact)[:200]} (score {explanation.combined})"


def body(contact: Contact, explanation: Explanation) -> str:
    """A short HTML email: who, why, the breakdown, the link. Everything a visitor typed is
    escaped."""
    company = contact.company.name if contact.company else ""
    who = escape(display_name(contact))
    if contact.name:
        who += Markup(" &lt;") + escape(contact.email) + Markup("&gt;")
    if company:
        who += Markup(", ") + escape(company)
    lines = [Markup("<li>{}: {:+d} ({})</li>").format(line.name, line.shown, line.kind)
             for line in explanation.fit_lines + explanation.engagement_lines if line.shown]
    link = contact_admin_url(contact.id)
    parts = [
        Markup("<p><strong>{}</strong> is ready for sales.</p>").format(who),
        Markup("<p>{}</p>").format(explanation.reason),
        Markup("<p>Score {}: fit {}, engagement {}.</p>").format(
            explanation.combined, explanation.fit, explanation.engagement),
    ]
    if lines:
        parts.append(Markup("<ul>{}</ul>").format(Markup("").join(lines)))
    if link:
        parts.append(Markup('<p><a href="{}">Open the contact</a></p>').format(link))
    return str(Markup("\n").join(parts))


def payload(handoff: Handoff, contact: Contact, explanation: Explanation) -> dict[str, Any]:
    """What the webhook receives."""
    return {"event": "handoff", "id": handoff.id,
            "contact": {"id": contact.id, "email": contact.email, "name": contact.name,
                        "company": contact.company.name if contact.company else "",
                        "stage": handoff.stage},
            "scores": {"fit": explanation.fit, "engagement": explanation.engagement,
                       "combined": explanation.combined},
            "reason": explanation.reason, "url": contact_admin_url(contact.id)}


@job("scoring.post_webhook")
def post_webhook(handoff_id: int) -> None:
    """POST the hand-off to the webhook. An error the receiver may recover from (5xx, a
    timeout, a refused connection) raises, so the outbox tries again with back-off; a target
    on a private network, or an answer that will not change (4xx, a redirect), is noted on
    the hand-off and not retried."""
    url = (settings().get("handoff_webhook") or "").strip()
    handoff = db.session.get(Handoff, handoff_id)
    contact = db.session.get(Contact, handoff.contact_id) if handoff else None
    if handoff is None or contact is None or not url:
        return  # erased since, or the webhook was removed
    data = payload(handoff, contact, explain(contact.id, history=False))
    db.session.rollback()  # no read transaction held open across the network
    try:
        status = post_json(url, data)
    except OutboundRefused as exc:
        log.warning("hand-off %s: webhook refused: %s", handoff_id, exc)
        _note(handoff_id, "webhook refused (private address)")
        return
    if worth_retrying(status):
        raise WebhookFailed(f"the webhook answered HTTP {status}")
    if status >= 300:
        log.warning("hand-off %s: the webhook answered HTTP %s", handoff_id, status)
    _note(handoff_id, f"webhook HTTP {status}")


def _note(handoff_id: int, outcome: str) -> None:
    with write() as session:
        row = session.get(Handoff, handoff_id)
        if row is not None:
            parts = [outcome if part == "webhook" else part for part in row.sent_to.split(", ")]
            if outcome not in parts:
                parts.append(outcome)
            session.execute(update(Handoff).where(Handoff.id == handoff_id)
                            .values(sent_to=", ".join(p for p in parts if p)[:400]))
