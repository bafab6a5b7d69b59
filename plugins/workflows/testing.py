"""Trying a workflow before (and while) it runs for real: a test run, and a dry run.

- `start_test` runs the published version for one contact in test mode: every email goes to
  the tester only (marked "[Test]"), notifications too, webhooks are not called, and every wait
  lasts at most `timing.TEST_WAIT` - so a week-long sequence is seen in a few minutes. Contact
  changes (tags, fields, stage, lists, score) do happen: test on a contact made for testing.
  A test enrolment counts nowhere (statistics, re-enrolment rules, events).
- `dry_run` writes nothing and sends nothing: it walks the steps being edited (the draft) from
  the start for one contact and says what each would do now - which way each decision goes on
  what the contact has done so far, how long each wait lasts, what would be sent.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from engine.contacts.models import Contact, Subscription
from engine.contacts.service import normalise_email
from engine.contacts.timezones import site_zone, zone_of
from engine.db import db, utcnow, write
from engine.mail.models import EmailTemplate
from plugins.workflows import conditions, runner, service, timing
from plugins.workflows import definition as wf_definition
from plugins.workflows.definition import WorkflowError
from plugins.workflows.models import Enrolment, Workflow

EVER = datetime(1970, 1, 1, tzinfo=UTC)  # a dry run counts everything the contact has done


def start_test(workflow: Workflow, contact_id: int, tester: str) -> Enrolment:
    """Run the workflow's published version for this contact in test mode (emails to `tester`).
    A new test run replaces this contact's previous one."""
    try:
        tester = normalise_email(tester)
    except ValueError:
        raise WorkflowError(f"“{tester}” is not an email address to send the test to.") \
            from None
    with write():
        found = db.session.get(Workflow, workflow.id)
        if found is None:
            raise WorkflowError("That workflow no longer exists.")
        if not found.version:
            raise WorkflowError(f"“{found.name}” has never been activated: activate it to run "
                                "a test (a dry run shows the draft's path without sending).")
        if found.status != "active":
            raise WorkflowError(f"“{found.name}” is {found.status}: a test runs the steps as "
                                "they run for real, so resume it first.")
        real = db.session.scalar(select(Enrolment.id).where(
            Enrolment.workflow_id == found.id, Enrolment.contact_id == contact_id,
            Enrolment.status == "active", Enrolment.test.is_(False)))
        if real is not None:
            raise WorkflowError("This contact is in the workflow for real right now: test on "
                                "another contact.")
        run = runner.Run(now=utcnow())
        run.workflows[found.id] = found
        enrolment = runner.enrol(run, found, contact_id, f"test run by {tester}", test=True,
                                 tester=tester)
        if enrolment is None:
            raise WorkflowError("No such contact (or the contact was erased).")
        runner.flush(run)
    return enrolment


@dataclass
class DryStep:
    step: str
    kind: str
    label: str  # the kind in words ("Send an email")
    outcome: str  # what it would do ("would send “Welcome”", "yes", "would wait 2 days …")
    note: str = ""  # why, or what could make it different


def _to(step: dict[str, Any], exit_: str = "next") -> str:
    """Where the walk goes on: a step's key, or "" for the end of the path."""
    return str(step.get(exit_) or "")


def _span(minutes: int) -> str:
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in
             ((days, "day"), (hours, "hour"), (mins, "minute")) if n]
    return " ".join(parts) or "0 minutes"


def _at(moment: datetime, zone: Any) -> str:
    return moment.astimezone(zone).strftime("%a %d %b %Y %H:%M")


def _activity_note(condition: dict[str, Any]) -> str:
    if any(p.get("kind") in conditions.ACTIVITY_KINDS for p in condition["conditions"]):
        return ("judged on what the contact has done so far; in a real run only what they "
                "do after entering counts, so this can still change")
    return ""


class _Walk:
    """One dry run: a clock of its own that moves through the waits, and nothing written."""

    def __init__(self, workflow: Workflow, contact: Contact) -> None:
        self.workflow, self.contact = workflow, contact
        self.now = utcnow()
        self.zone = zone_of(contact, site_zone())

    def holds(self, condition: dict[str, Any]) -> bool:
        return conditions.holds(condition, contact_id=self.contact.id,
                                workflow_id=self.workflow.id, since=EVER)

    def step(self, step: dict[str, Any]) -> tuple[str, str, str | None]:
        """(outcome, note, next key; None: the walk stops here)."""
        kind = step["kind"]
        handler = getattr(self, f"_{kind}", None)
        if handler is not None:
            return handler(step)
        return self._change(step)

    def _send_email(self, step: dict[str, Any]) -> tuple[str, str, str | None]:
        template = db.session.get(EmailTemplate, int(step["template_id"]))
        if template is None:
            return "cannot send: its email template was deleted", "", _to(step)
        subject = step.get("subject") or template.subject
        c = self.contact
        if not c.email or c.status not in ("active", "bounced"):
            return f"would skip “{subject}”", "the contact cannot be emailed", _to(step)
        if step.get("list") and db.session.scalar(select(Subscription.id).where(
                Subscription.contact_id == c.id, Subscription.list_slug == step["list"],
                Subscription.status == "subscribed")) is None:
            return (f"would skip “{subject}”", f"not subscribed to {step['list']}",
                    _to(step))
        note = ""
        allowed = timing.sending_time(self.now, self.zone, self.workflow.rules)
        if allowed > self.now:
            note, self.now = f"held for the sending hours until {_at(allowed, self.zone)}", \
                allowed
        return f"would send “{subject}” to {c.email}", note, _to(step)

    def _wait(self, step: dict[str, Any]) -> tuple[str, str, str | None]:
        mode = step.get("mode", "duration")
        if mode == "until_condition":
            if self.holds(step["condition"]):
                return "condition met already: would go on", "", _to(step)
            end = self.now + timedelta(minutes=int(step["timeout_minutes"]))
            self.now = end
            note = "if it is met before then, the contact goes on at once"
            if step.get("next") != step.get("timeout_next"):
                note += f" (to {step.get('next') or 'the end'})"
            return (f"would wait up to {_span(int(step['timeout_minutes']))} (until "
                    f"{_at(end, self.zone)}), then time out", note, _to(step, "timeout_next"))
        end = timing.wait_end(step, self.now, self.zone, self.contact.custom or {})
        if end is None:
            return "would not wait", f"no date in {step.get('field')}", _to(step)
        if end <= self.now:
            return "would not wait: the moment is past", "", _to(step)
        minutes = int((end - self.now).total_seconds() // 60)
        self.now = end
        return f"would wait {_span(minutes)} (until {_at(end, self.zone)})", "", _to(step)

    def _if(self, step: dict[str, Any]) -> tuple[str, str, str | None]:
        met = self.holds(step["condition"])
        return ("yes" if met else "no"), _activity_note(step["condition"]), \
            _to(step, "yes" if met else "no")

    def _split(self, step: dict[str, Any]) -> tuple[str, str, str | None]:
        first, *others = step["paths"]
        rest = ", ".join(f"{p['label']} ({p['share']}%)" for p in others)
        return (f"path {first['label']} ({first['share']}%) — chosen at random",
                f"shown: path {first['label']}; the others: {rest}", _to(first))

    def _goal(self, step: dict[str, Any]) -> tuple[str, str, str | None]:
        note = _activity_note(step["condition"])
        if self.holds(step["condition"]):
            if step.get("next"):
                return "goal met already: would count as converted", note, _to(step)
            return "goal met already: would finish, converted", note, None
        unmet = step.get("unmet", "wait")
        if unmet == "continue":
            return "goal not met: would go on", note, _to(step)
        if unmet == "exit":
            return "goal not met: would leave the workflow", note, None
        return "would wait here until the goal is met (up to a year)", note, None

    def _end(self, step: dict[str, Any]) -> tuple[str, str, str | None]:
        return "would finish", "", None

    def _change(self, step: dict[str, Any]) -> tuple[str, str, str | None]:
        kind = step["kind"]
        said = {
            "tag": lambda: f"would {'add' if step['action'] == 'add' else 'remove'} the tag "
                           f"{step['tag']}",
            "set_field": lambda: f"would set {step['field']} to “{step['value']}”",
            "set_stage": lambda: f"would change the lifecycle stage to {step['stage']}",
            "list": lambda: f"would {'add to' if step['action'] == 'add' else 'remove from'} "
                            f"the list {step['list']}",
            "adjust_score": lambda: f"would add {step['points']:+d} points",
            "notify": lambda: f"would notify {step['to']}: “{step['subject']}”",
            "webhook": lambda: f"would call {step['url']}",
        }[kind]()
        note = "not applied in a dry run: later steps see the contact as it is now" \
            if kind in ("tag", "set_field", "set_stage", "list", "adjust_score") else ""
        return said, note, _to(step)


def dry_run(workflow: Workflow, contact_id: int) -> list[DryStep]:
    """The path this contact would take through the steps being edited (the published ones
    when there is no draft), judged now; nothing is written or sent. Decisions on what the
    contact did "since entering" are judged on everything they have done so far."""
    contact = db.session.get(Contact, contact_id)
    if contact is None or contact.status in ("merged", "erased"):
        raise WorkflowError("No such contact (or the contact was merged or erased).")
    graph = workflow.draft if workflow.draft.get("steps") else service.current(workflow)
    steps = graph.get("steps", {})
    if not steps:
        raise WorkflowError("The workflow has no steps yet.")
    walk, out, key, seen = _Walk(workflow, contact), [], graph.get("start", ""), set()
    while key and key in steps and key not in seen and len(out) <= wf_definition.MAX_STEPS:
        seen.add(key)
        step = steps[key]
        outcome, note, following = walk.step(step)
        out.append(DryStep(key, step["kind"], wf_definition.STEP_KINDS[step["kind"]].label,
                           outcome, note))
        if following is None:
            return out
        key = following
    if key and key not in steps:
        out.append(DryStep(key, "", "", "stops: this step does not exist", ""))
    elif not key and out and out[-1].kind != "end":
        out.append(DryStep("", "end", "End", "would finish: the end of this path", ""))
    return out
