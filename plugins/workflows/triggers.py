"""Workflows reacting to the event stream, as each batch is delivered (`on_event`).

For each event, in the order the contact's events happened:
1. exits - leaving the workflow's exit segment, or unsubscribing, ends the contact's active
   enrolments in the workflows that say so;
2. triggers - each active workflow whose trigger the event matches enrols the contact (its
   first steps run at once, in this transaction: a trigger's first email is queued in the same
   commit as the delivery);
3. then, for the contacts of the batch: goals that became true pull the contact forward to
   them, waits on a condition that became true end, and date fields that changed move the
   contact's date-trigger timer (`dates`).
Nothing here scans contacts: every question is about the contacts the batch names.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select

from engine.db import db, utcnow
from plugins.workflows import conditions, dates, runner, steps
from plugins.workflows.conditions import path_matches
from plugins.workflows.definition import goals
from plugins.workflows.models import DueStep, Enrolment, StepRun, Workflow

UNSUBSCRIBED = frozenset({"email_unsubscribed"})


def describe_trigger(event: dict[str, Any]) -> str:
    props = event.get("properties") or {}
    return {
        "form_submitted": f"submitted the form {props.get('form', '')}",
        "page_view": f"visited {props.get('path', '')}",
        "tag_added": f"was tagged {props.get('tag', '')}",
        "list_joined": f"joined the list {props.get('list', '')}",
        "subscription_confirmed": f"confirmed the list {props.get('list', '')}",
        "segment_entered": f"entered the segment {props.get('segment', '')}",
        "segment_left": f"left the segment {props.get('segment', '')}",
        "score_changed": f"reached a score of {props.get('combined', '')}",
        "stage_changed": f"became {props.get('new', '')}",
        "email_opened": f"opened the email {props.get('mailing', '')}",
        "email_clicked": f"clicked in the email {props.get('mailing', '')}",
    }.get(event["type"], f"did {event['type']}")[:300]


def matches(trigger: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether this event is the workflow's trigger."""
    kind, type_ = trigger.get("kind"), event["type"]
    props = event.get("properties") or {}
    if kind == "form_submitted":
        return type_ == "form_submitted" and (not trigger.get("form")
                                              or props.get("form") == trigger["form"])
    if kind == "page_visited":
        return type_ == "page_view" and path_matches(trigger["pattern"],
                                                     str(props.get("path") or ""))
    if kind == "tag_added":
        return type_ == "tag_added" and str(props.get("tag", "")).lower() == \
            trigger["tag"].lower()
    if kind == "list_joined":
        return props.get("list") == trigger["list"] and (
            (type_ == "list_joined" and props.get("status") == "subscribed")
            or type_ == "subscription_confirmed")
    if kind in ("segment_entered", "segment_left"):
        return type_ == kind and props.get("segment_id") == trigger["segment_id"]
    if kind == "score_reached":
        if type_ != "score_changed":
            return False
        try:
            now = float(props.get("combined"))
            before = now - float(props.get("change") or 0)
        except (TypeError, ValueError):
            return False
        return before < trigger["threshold"] <= now
    if kind == "stage_reached":
        return type_ == "stage_changed" and props.get("new") == trigger["stage"]
    if kind == "event":
        return type_ == trigger["type"]
    if kind in ("email_opened", "email_clicked"):
        return (type_ == kind and not props.get("machine")
                and (not trigger.get("mailing") or props.get("mailing") == trigger["mailing"]))
    return False  # date fields and manual enrolment do not come from events


def _active() -> list[Workflow]:
    return list(db.session.scalars(select(Workflow).where(Workflow.status == "active",
                                                          Workflow.version > 0)))


def handle(batch: list[dict[str, Any]]) -> None:
    """React to a delivered batch (inside the delivery's transaction)."""
    known = [e for e in batch if e.get("contact_id")]
    workflows = _active() if known else []
    if not workflows:
        return
    run = runner.Run(now=utcnow())
    for workflow in workflows:
        run.workflows[workflow.id] = workflow
    # Read together only the contacts an event may enrol or move a date timer for: most of a
    # busy stream (emails sent, workflows finished) needs none, and reading a batch's 500
    # contacts was a sixth of a delivery's time. Others are read when a step needs them.
    run.load_contacts(sorted({e["contact_id"] for e in known if e["type"] == "field_changed"
                              or any(matches(w.trigger, e) for w in workflows)}))
    entering: dict[int, dict[int, str]] = defaultdict(dict)  # workflow -> {contact: why}
    for event in known:
        for workflow_id in _exits(run, workflows, event):  # an exit after the trigger wins
            entering[workflow_id].pop(event["contact_id"], None)
        for workflow in workflows:
            if matches(workflow.trigger, event):
                entering[workflow.id].setdefault(event["contact_id"], describe_trigger(event))
    for workflow in workflows:
        if entering.get(workflow.id):
            reasons = entering[workflow.id]
            runner.enrol_many(run, workflow, list(reasons), "", reasons)
    runner.start_all(run)
    _watched(run, workflows, known)
    dates.fields_changed(run, workflows, known)
    runner.flush(run)
    runner.release(run)


def _exits(run: runner.Run, workflows: list[Workflow], event: dict[str, Any]) -> set[int]:
    """End the contact's enrolments in the workflows this event makes them leave; returns
    those workflows."""
    props = event.get("properties") or {}
    leaving = []
    for workflow in workflows:
        rules = workflow.rules
        if event["type"] in UNSUBSCRIBED and rules.get("exit_on_unsubscribe", True):
            leaving.append((workflow.id, "unsubscribed"))
        elif (event["type"] == "segment_left" and rules.get("exit_segment_id")
              and props.get("segment_id") == rules["exit_segment_id"]):
            leaving.append((workflow.id, f"left the segment {props.get('segment', '')}"))
    if not leaving:
        return set()
    reasons = dict(leaving)
    for enrolment in db.session.scalars(select(Enrolment).where(
            Enrolment.contact_id == event["contact_id"], Enrolment.status == "active",
            Enrolment.workflow_id.in_(list(reasons)))):
        _load_due(run, enrolment)
        runner.finish(run, enrolment, "exited", reasons[enrolment.workflow_id])
    return set(reasons)


def _load_due(run: runner.Run, enrolment: Enrolment) -> DueStep | None:
    if enrolment.id not in run.due_rows:
        row = db.session.scalar(select(DueStep).where(DueStep.enrolment_id == enrolment.id)
                                .with_for_update())
        if row is not None:
            run.due_rows[enrolment.id] = row
    return run.due_rows.get(enrolment.id)


def _watched(run: runner.Run, workflows: list[Workflow], batch: list[dict[str, Any]]) -> None:
    """Goals anywhere in a workflow, and waits on a condition, for the batch's contacts."""
    with_goals = {}
    for workflow in workflows:
        found = goals(run.steps_of_version(workflow))
        if found:
            with_goals[workflow.id] = found
    types_of: dict[int, set[str]] = defaultdict(set)
    for event in batch:
        types_of[event["contact_id"]].add(event["type"])
    contacts = sorted(types_of)
    if with_goals:
        for enrolment in db.session.scalars(select(Enrolment).where(
                Enrolment.contact_id.in_(contacts), Enrolment.status == "active",
                Enrolment.workflow_id.in_(list(with_goals))).order_by(Enrolment.id)):
            _check_goals(run, enrolment, with_goals[enrolment.workflow_id],
                         types_of[enrolment.contact_id])
    for row in db.session.scalars(select(DueStep).where(
            DueStep.contact_id.in_(contacts), DueStep.watching.is_(True))
            .order_by(DueStep.id).with_for_update()):
        enrolment = db.session.get(Enrolment, row.enrolment_id)
        if enrolment is None or enrolment.status != "active":
            continue
        run.due_rows.setdefault(enrolment.id, row)
        step = run.steps_of(enrolment).get("steps", {}).get(row.step)
        if step is None or step["kind"] != "wait":
            continue  # goals waiting were handled above
        if _relevant(step["condition"], types_of[enrolment.contact_id]) and \
                steps.condition_met(run, enrolment, row.step, step):
            row.waiting = False  # arriving afresh: the step sees the condition met
            runner.run_one(run, enrolment, row.step, None)


def _relevant(condition: dict[str, Any], types: set[str]) -> bool:
    wanted = conditions.event_types(condition)
    return wanted is None or bool(wanted & types)


def _check_goals(run: runner.Run, enrolment: Enrolment, found: dict[str, dict[str, Any]],
                 types: set[str]) -> None:
    if enrolment.version != run.workflow(enrolment.workflow_id).version:
        found = goals(run.steps_of(enrolment))
    passed = set(db.session.scalars(select(StepRun.step).where(
        StepRun.enrolment_id == enrolment.id, StepRun.step.in_(list(found)))))
    for key, step in found.items():
        if not _relevant(step["condition"], types):
            continue
        if not conditions.holds(step["condition"], contact_id=enrolment.contact_id,
                                workflow_id=enrolment.workflow_id, since=enrolment.entered_at):
            continue
        if key in passed:  # already beyond it: counted as converted, stays where it is
            steps.reached(run, enrolment, step)
            continue
        _load_due(run, enrolment)
        runner.run_one(run, enrolment, key, None)  # jumps to the goal, goes on from there
        return
