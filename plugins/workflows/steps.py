"""What each kind of step does when an enrolment reaches it.

`execute()` runs one step for one enrolment inside the runner's transaction and says what comes
next (`Outcome`): go on to a step, wait here until a moment, or finish. Effects go through the
core's services in the same transaction - tags, fields, stages and lists through the contact
store (each change an event on the stream), emails into the mail core's send ledger, webhooks
and notifications through the outbox - so a batch that rolls back leaves no trace, and one that
commits has done each step once.
"""
from __future__ import annotations

import html
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from engine import mail
from engine.contacts import service as contacts_service
from engine.contacts.models import Contact, Subscription
from engine.contacts.store import ContactError
from engine.contacts.timezones import zone_of
from engine.db import db
from engine.jobs import outbox
from engine.mail import rendering
from engine.mail.models import EmailTemplate
from engine.web.links import contact_admin_url
from engine.web.outbound import OutboundRefused, post_json, worth_retrying
from plugins.workflows import conditions, timing
from plugins.workflows.models import Enrolment, Workflow

GOAL_WAIT = timedelta(days=365)  # a goal that waits gives up after a year


@dataclass
class Outcome:
    next: str | None = None  # the step to go on to ("" or None: the end)
    outcome: str = ""  # what the history shows
    hold_until: datetime | None = None  # wait at this step until then
    waiting: bool = False  # the hold is the step's own wait (over when due)
    held: str = ""  # why it is held, for the builder and the contact page
    watching: bool = False  # re-checked as the contact's events arrive
    finish: str | None = None  # "completed" / "exited" after this step
    reason: str = ""


def execute(run: Any, enrolment: Enrolment, key: str, step: dict[str, Any],
            due: Any) -> Outcome:
    """Run `step` for `enrolment`. `due` is the due row that brought the enrolment back to this
    step (a wait that is over, an email held for sending hours), or None on arrival."""
    return KINDS[step["kind"]](run, enrolment, key, step, due)


def _zone(run: Any, enrolment: Enrolment) -> Any:
    return zone_of(run.contact(enrolment.contact_id), run.site_zone)


ASKS = {"if", "goal"}  # kinds of step that ask a condition on arrival (and waits on one)


def _asks(step: dict[str, Any], due: Any) -> bool:
    if step["kind"] == "wait":
        return step.get("mode") == "until_condition" and not (due is not None and due.waiting)
    return step["kind"] in ASKS


def prepare(run: Any, items: list[Any]) -> None:
    """Ask the conditions a round's steps need, one query per (workflow version, step) for
    all the enrolments arriving there, instead of one per enrolment."""
    groups: dict[tuple[int, int, str], list[Enrolment]] = {}
    for item in items:
        step = run.steps_of(item.enrolment).get("steps", {}).get(item.key)
        if step is not None and _asks(step, item.due):
            groups.setdefault((item.enrolment.workflow_id, item.enrolment.version, item.key),
                              []).append(item.enrolment)
    for (workflow_id, version, key), enrolments in groups.items():
        if len(enrolments) < 2:
            continue  # one is asked as it comes
        step = run.versions[(workflow_id, version)]["steps"][key]
        yes = conditions.holding(step["condition"], workflow_id, [e.id for e in enrolments])
        for enrolment in enrolments:
            run.answers[(enrolment.id, key)] = enrolment.id in yes


def _holds(run: Any, enrolment: Enrolment, key: str, condition: dict[str, Any]) -> bool:
    known = run.answers.pop((enrolment.id, key), None)
    if known is not None:
        return known
    return conditions.holds(condition, contact_id=enrolment.contact_id,
                            workflow_id=enrolment.workflow_id, since=enrolment.entered_at,
                            cache=run.statements)


# --- email -------------------------------------------------------------------------------------

def email_settings(run: Any, workflow_id: int, key: str) -> tuple[int, str]:
    """(template id, subject override) of a workflow's email step. Publishing moves every
    enrolment onto the newest version, so the step is read from it (a step keeps its key, and
    its mailing, across versions); a version the batch ran is the fallback."""
    versions = [run.steps_of_version(run.workflow(workflow_id))] + [
        definition for (wid, _version), definition in run.versions.items()
        if wid == workflow_id]
    step = next(d["steps"][key] for d in versions if key in d.get("steps", {}))
    return int(step["template_id"]), str(step.get("subject") or "")


def _send_email(run: Any, enrolment: Enrolment, key: str, step: dict[str, Any],
                due: Any) -> Outcome:
    contact = run.contact(enrolment.contact_id)
    if not contact.email or contact.status not in ("active", "bounced"):
        return Outcome(step.get("next"), "skipped: the contact cannot be emailed")
    workflow = run.workflow(enrolment.workflow_id)
    allowed = timing.sending_time(run.now, _zone(run, enrolment), workflow.rules)
    if allowed > run.now and not enrolment.test:
        return Outcome(hold_until=allowed, held="waits for the sending hours")
    if not run.template_exists(int(step["template_id"])):
        raise LookupError(f"email template {step['template_id']} no longer exists")
    if enrolment.test:
        _send_test(run, enrolment, step)
        return Outcome(step.get("next"), f"test email sent to {enrolment.tester}")
    if step.get("list") and not _subscribed(contact.id, step["list"]):
        return Outcome(step.get("next"), f"skipped: not subscribed to {step['list']}")
    run.emails[(enrolment.workflow_id, key)].append((contact.id, f"e{enrolment.id}"))
    return Outcome(step.get("next"), "email queued")


def _subscribed(contact_id: int, slug: str) -> bool:
    return db.session.scalar(select(Subscription.id).where(
        Subscription.contact_id == contact_id, Subscription.list_slug == slug,
        Subscription.status == "subscribed")) is not None


def _send_test(run: Any, enrolment: Enrolment, step: dict[str, Any]) -> None:
    """Test mode: the email as this contact would get it, to the tester only."""
    template = db.session.get(EmailTemplate, int(step["template_id"]))
    contact = run.contact(enrolment.contact_id)
    values = {**rendering.site_values(), **rendering.contact_values(contact),
              "unsubscribe_url": "#", "preferences_url": "#"}
    rendered = rendering.compiled(template, subject=step.get("subject") or None).render(values)
    mail.send(enrolment.tester, f"[Test] {rendered.subject}", rendered.html, rendered.text,
              headers={"From": mail.sender(values["site"]["name"])}, contact_id=contact.id)


# --- waits, decisions, splits, goals -----------------------------------------------------------

def _wait(run: Any, enrolment: Enrolment, key: str, step: dict[str, Any],
          due: Any) -> Outcome:
    mode = step.get("mode", "duration")
    if due is not None and due.waiting:  # the wait is over
        if mode == "until_condition":
            return Outcome(step.get("timeout_next"), "timed out")
        return Outcome(step.get("next"), "waited")
    if mode == "until_condition" and _holds(run, enrolment, key, step["condition"]):
        return Outcome(step.get("next"), "condition met")
    contact = run.contact(enrolment.contact_id)
    end = timing.wait_end(step, run.now, _zone(run, enrolment), contact.custom or {},
                          enrolment.test)
    if end is None:
        return Outcome(step.get("next"), f"no date in {step.get('field')}: not waited")
    if end <= run.now:
        return Outcome(step.get("next"), "already past: not waited")
    held = "until the condition is met" if mode == "until_condition" else "waiting"
    return Outcome(hold_until=end, waiting=True, held=held,
                   watching=mode == "until_condition")


def condition_met(run: Any, enrolment: Enrolment, key: str, step: dict[str, Any]) -> bool:
    """For a contact waiting on a condition: is it met now? (asked as events arrive)."""
    return _holds(run, enrolment, key, step["condition"])


def _if(run: Any, enrolment: Enrolment, key: str, step: dict[str, Any], due: Any) -> Outcome:
    if _holds(run, enrolment, key, step["condition"]):
        return Outcome(step.get("yes"), "yes")
    return Outcome(step.get("no"), "no")


def _split(run: Any, enrolment: Enrolment, key: str, step: dict[str, Any],
           due: Any) -> Outcome:
    """A random path by the shares, the same for an enrolment whenever it is asked (a retried
    batch takes the same path)."""
    roll = random.Random(f"{enrolment.id}:{key}").uniform(0, 100)
    total = 0
    for path in step["paths"]:
        total += path["share"]
        if roll < total:
            return Outcome(path.get("next"), f"path {path['label']}")
    last = step["paths"][-1]
    return Outcome(last.get("next"), f"path {last['label']}")


def _goal(run: Any, enrolment: Enrolment, key: str, step: dict[str, Any],
          due: Any) -> Outcome:
    if _holds(run, enrolment, key, step["condition"]):
        reached(run, enrolment, step)
        if not step.get("next"):
            return Outcome(finish="completed", outcome="goal reached",
                           reason=f"reached the goal “{step['name']}”")
        return Outcome(step.get("next"), "goal reached")
    if due is not None and due.waiting:
        return Outcome(finish="exited", outcome="goal not met in a year",
                       reason=f"did not reach the goal “{step['name']}”")
    unmet = step.get("unmet", "wait")
    if unmet == "continue":
        return Outcome(step.get("next"), "goal not met: went on")
    if unmet == "exit":
        return Outcome(finish="exited", outcome="goal not met",
                       reason=f"had not reached the goal “{step['name']}”")
    return Outcome(hold_until=run.now + GOAL_WAIT, waiting=True, watching=True,
                   held=f"until the goal “{step['name']}” is met")


def reached(run: Any, enrolment: Enrolment, step: dict[str, Any]) -> None:
    if enrolment.converted_at is None:
        enrolment.converted_at = run.now
        run.event("workflow_goal_reached", enrolment, goal=step.get("name", "Goal"))


# --- contact changes ---------------------------------------------------------------------------

def _tag(run: Any, enrolment: Enrolment, key: str, step: dict[str, Any],
         due: Any) -> Outcome:
    """Gathered for the round's one statement per tag (`runner.apply_pending`)."""
    action = "tag" if step["action"] == "add" else "untag"
    run.pending[(action, step["tag"])].add(enrolment.contact_id)
    return Outcome(step.get("next"), f"tagged {step['tag']}" if action == "tag"
                   else f"tag {step['tag']} removed")


def _set_values(run: Any, enrolment: Enrolment, values: dict[str, Any]) -> str:
    contact = run.contact(enrolment.contact_id)
    try:
        clean = contacts_service.clean_values(values, run.custom_fields())
    except ContactError as exc:
        return f"not set: {exc}"
    changes = contacts_service.apply_values(contact, clean)
    return "set" if changes else "unchanged"


def _set_field(run: Any, enrolment: Enrolment, key: str, step: dict[str, Any],
               due: Any) -> Outcome:
    said = _set_values(run, enrolment, {step["field"]: step["value"]})
    return Outcome(step.get("next"), f"{step['field']}: {said}")


def _set_stage(run: Any, enrolment: Enrolment, key: str, step: dict[str, Any],
               due: Any) -> Outcome:
    said = _set_values(run, enrolment, {"lifecycle_stage": step["stage"]})
    return Outcome(step.get("next"), f"stage {step['stage']}: {said}")


def _list(run: Any, enrolment: Enrolment, key: str, step: dict[str, Any],
          due: Any) -> Outcome:
    action = "join" if step["action"] == "add" else "leave"
    run.pending[(action, step["list"])].add(enrolment.contact_id)
    return Outcome(step.get("next"), f"added to {step['list']}" if action == "join"
                   else f"taken off {step['list']}")


def _adjust_score(run: Any, enrolment: Enrolment, key: str, step: dict[str, Any],
                  due: Any) -> Outcome:
    """An event on the stream (written with the batch's others): Lead scoring, when enabled
    and given a rule on it, adds the points."""
    workflow = run.workflow(enrolment.workflow_id)
    run.recorded.append({"enrolment": enrolment.id, "type": "score_adjusted",
                         "contact_id": enrolment.contact_id, "occurred_at": run.now,
                         "properties": {"points": step["points"],
                                        "reason": f"Workflow {workflow.name}"}})
    return Outcome(step.get("next"), f"score {step['points']:+d}")


# --- telling people and systems ----------------------------------------------------------------

def _notify(run: Any, enrolment: Enrolment, key: str, step: dict[str, Any],
            due: Any) -> Outcome:
    """An email to a colleague (transactional: it reaches them whatever their marketing
    preferences), naming the contact and linking to their page."""
    contact = run.contact(enrolment.contact_id)
    workflow = run.workflow(enrolment.workflow_id)
    to = enrolment.tester if enrolment.test else step["to"]
    link = contact_admin_url(contact.id)
    who = html.escape(f"{contact.name} <{contact.email}>" if contact.name else contact.email)
    body = (f"<p>{html.escape(step.get('message') or '')}</p>"
            f"<p>Contact: {who}"
            + (f' — <a href="{html.escape(link)}">open in the admin</a>' if link else "")
            + f"</p><p>From the workflow “{html.escape(workflow.name)}”, "
              f"step {html.escape(key)}.</p>")
    subject = " ".join(f"{step['subject']} — {contact.email}".split())[:300]
    sent = [mail.send(address.strip(), subject, body, contact_id=contact.id)
            for address in to.split(",") if address.strip()]
    return Outcome(step.get("next"), f"notified {len(sent)} person(s)")


def _webhook(run: Any, enrolment: Enrolment, key: str, step: dict[str, Any],
             due: Any) -> Outcome:
    if enrolment.test:
        return Outcome(step.get("next"), "test mode: webhook not called")
    outbox.add("workflows.webhook", enrolment_id=enrolment.id, step=key, url=step["url"])
    return Outcome(step.get("next"), "webhook queued")


class WebhookFailed(RuntimeError):
    """The receiver answered with an error it may recover from: the outbox tries again."""


def post_webhook(enrolment_id: int, step: str, url: str) -> None:
    """POST the contact and the workflow to the step's URL (`engine.web.outbound`: no private
    addresses, no redirects). 5xx, 408, 425, 429 and network errors are retried with back-off;
    a refused target or another answer is final (logged)."""
    enrolment = db.session.get(Enrolment, enrolment_id)
    if enrolment is None:
        return
    contact = db.session.scalar(select(Contact).where(Contact.id == enrolment.contact_id))
    workflow = db.session.get(Workflow, enrolment.workflow_id)
    if contact is None or workflow is None or contact.status == "erased":
        return
    payload = {"event": "workflow_step", "workflow": workflow.name, "step": step,
               "enrolment_id": enrolment_id,
               "contact": {"id": contact.id, "email": contact.email,
                           "first_name": contact.first_name, "last_name": contact.last_name,
                           "company": contact.company.name if contact.company else "",
                           "lifecycle_stage": contact.lifecycle_stage,
                           "url": contact_admin_url(contact.id)}}
    db.session.rollback()  # no read transaction held open across the network
    try:
        status = post_json(url, payload)
    except OutboundRefused:
        return
    if worth_retrying(status):
        raise WebhookFailed(f"the webhook answered HTTP {status}")


def _end(run: Any, enrolment: Enrolment, key: str, step: dict[str, Any],
         due: Any) -> Outcome:
    return Outcome(finish="completed", outcome="end", reason="reached the end")


KINDS = {
    "send_email": _send_email, "wait": _wait, "if": _if, "split": _split, "goal": _goal,
    "tag": _tag, "set_field": _set_field, "set_stage": _set_stage, "list": _list,
    "adjust_score": _adjust_score, "notify": _notify, "webhook": _webhook, "end": _end,
}

