"""`magnet workflows …`: see, start, enrol and switch workflows from the command line.

The same operations as the admin, through the same services (`service`, `manual`, `library`),
so a rule lives in one place; what the admin shows as a builder, `show` prints as text, step by
step in reading order with how many contacts are at each step and have passed it.
"""
from __future__ import annotations

from typing import Any

import click
from flask.cli import AppGroup

from engine.db import db
from engine.mail.models import EmailTemplate
from engine.segments.models import Segment
from plugins.workflows import definition as wf_definition
from plugins.workflows import library, manual, service
from plugins.workflows.definition import WorkflowError
from plugins.workflows.models import Workflow

workflows_group = AppGroup("workflows", help="Drip sequences and nurture workflows: list, "
                                             "show, start from a template, enrol, switch.")
BY = "command line"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _find(name: str) -> Workflow:
    workflow = service.by_name(name)
    if workflow is None or workflow.status == "archived":
        raise click.ClickException(f"No workflow named {name!r} (`magnet workflows list` "
                                   "shows them).")
    return workflow


def _span(minutes: int) -> str:
    days, rest = divmod(int(minutes), 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in
             ((days, "day"), (hours, "hour"), (mins, "minute")) if n]
    return " ".join(parts) or "0 minutes"


def _segment(segment_id: Any) -> str:
    segment = db.session.get(Segment, int(segment_id or 0))
    return f"“{segment.name}”" if segment else f"#{segment_id} (deleted)"


def describe_trigger(trigger: dict[str, Any]) -> str:
    """What starts a workflow, in words."""
    kind = trigger.get("kind", "")
    if kind == "form_submitted":
        return f"submits the form {trigger['form']}" if trigger.get("form") \
            else "submits any form"
    if kind == "date_field":
        offset = int(trigger.get("offset_days", 0))
        when = "on the day" if not offset else (
            f"{abs(offset)} day(s) {'before' if offset < 0 else 'after'}")
        yearly = ", every year" if trigger.get("yearly", True) else ""
        return (f"the date in {trigger['field']} comes round ({when}, at "
                f"{int(trigger.get('hour', 9)):02d}:00{yearly})")
    return {
        "page_visited": lambda: f"visits {trigger.get('pattern')}",
        "tag_added": lambda: f"is tagged {trigger.get('tag')}",
        "list_joined": lambda: f"joins the list {trigger.get('list')}",
        "segment_entered": lambda: f"enters the segment {_segment(trigger.get('segment_id'))}",
        "segment_left": lambda: f"leaves the segment {_segment(trigger.get('segment_id'))}",
        "score_reached": lambda: f"reaches a {trigger.get('score')} score of "
                                 f"{trigger.get('threshold')}",
        "stage_reached": lambda: f"becomes {trigger.get('stage')}",
        "event": lambda: f"the event {trigger.get('type')} happens",
        "email_opened": lambda: f"opens {trigger.get('mailing') or 'any email'}",
        "email_clicked": lambda: f"clicks in {trigger.get('mailing') or 'any email'}",
        "manual": lambda: "only when enrolled by hand",
    }.get(kind, lambda: kind)()


def describe_rules(rules: dict[str, Any]) -> list[str]:
    enrol = rules.get("enrol", "once")
    lines = [{"once": "Enrols a contact once, ever.",
              "again": f"Enrols a contact again {rules.get('again_days')} day(s) after the last "
                       "time began.",
              "always": "Enrols a contact every time (never twice at once)."}[enrol]]
    if rules.get("exit_on_unsubscribe", True):
        lines.append("Leaves on unsubscribing.")
    if rules.get("exit_segment_id"):
        lines.append(f"Leaves on leaving the segment {_segment(rules['exit_segment_id'])}.")
    if "quiet_from" in rules:
        lines.append(f"Sends no email from {rules['quiet_from']:02d}:00 to "
                     f"{rules['quiet_to']:02d}:00 (the contact's time).")
    if rules.get("days"):
        lines.append("Sends email only on " + ", ".join(WEEKDAYS[d] for d in rules["days"])
                     + ".")
    return lines


def describe_condition(condition: dict[str, Any]) -> str:
    def part(p: dict[str, Any]) -> str:
        kind = p.get("kind")
        if kind == "wf_email":
            return f"{p['action']} {'the email of ' + p['step'] if p['step'] else 'an email'}"
        if kind == "wf_page":
            return f"visited {p['path']}"
        if kind == "wf_form":
            return f"submitted {'the form ' + p['form'] if p.get('form') else 'a form'}"
        if kind == "wf_event":
            return f"did {p['type']}"
        if kind == "tag":
            return f"{'has' if p.get('op', 'has') == 'has' else 'has not'} the tag {p['tag']}"
        details = ", ".join(f"{k}={v}" for k, v in p.items() if k != "kind")
        return f"{kind} ({details})"
    joiner = " and " if condition.get("match", "all") == "all" else " or "
    return joiner.join(part(p) for p in condition.get("conditions", []))


def describe_step(step: dict[str, Any]) -> str:
    """One step in words, with where it leads."""
    kind = step["kind"]
    if kind == "send_email":
        template = db.session.get(EmailTemplate, int(step["template_id"]))
        subject = step.get("subject") or (template.subject if template else "")
        text = (f"send “{subject}” ({template.name})" if template
                else f"send template #{step['template_id']} (deleted)")
    elif kind == "wait":
        mode = step.get("mode", "duration")
        text = {
            "duration": lambda: f"wait {_span(step['minutes'])}",
            "until_date": lambda: f"wait until {step['date']} {step['hour']:02d}:00",
            "until_weekday": lambda: "wait until " + "/".join(
                WEEKDAYS[d] for d in step["weekdays"]) + f" {step['hour']:02d}:00",
            "until_field": lambda: f"wait until the date in {step['field']} "
                                   f"({step.get('offset_days', 0):+d} days) "
                                   f"{step['hour']:02d}:00",
            "until_condition": lambda: f"wait until {describe_condition(step['condition'])}, "
                                       f"at most {_span(step['timeout_minutes'])}",
        }[mode]()
    elif kind == "if":
        text = f"if {describe_condition(step['condition'])}"
    elif kind == "goal":
        text = (f"goal “{step['name']}”: {describe_condition(step['condition'])} "
                f"(not met yet: {step.get('unmet', 'wait')})")
    elif kind == "split":
        text = "split at random"
    elif kind == "tag":
        text = f"{step['action']} the tag {step['tag']}"
    elif kind == "set_field":
        text = f"set {step['field']} to “{step['value']}”"
    elif kind == "set_stage":
        text = f"change the stage to {step['stage']}"
    elif kind == "list":
        text = f"{'add to' if step['action'] == 'add' else 'remove from'} the list {step['list']}"
    elif kind == "adjust_score":
        text = f"adjust the score {step['points']:+d}"
    elif kind == "notify":
        text = f"notify {step['to']}: “{step['subject']}”"
    elif kind == "webhook":
        text = f"call {step['url']}"
    else:
        text = "end"
    exits = [(label, target) for label, target in wf_definition.exits(step)]
    if kind == "end":
        return text
    if len(exits) == 1:
        return f"{text} → {exits[0][1] or 'end'}"
    return f"{text} → " + ", ".join(f"{label}: {target or 'end'}" for label, target in exits)


@workflows_group.command("list")
def list_command() -> None:
    """Every workflow: name, status, trigger, contacts in it now and those who finished it."""
    workflows = service.all_workflows()
    if not workflows:
        click.echo("No workflows yet (`magnet workflows templates` lists ready-made ones).")
        return
    width = max(len(w.name) for w in workflows)
    for workflow in workflows:
        totals = service.totals(workflow)
        click.echo(f"{workflow.name:<{width}}  {workflow.status:<8} {totals['active']:>6} "
                   f"active {totals['completed']:>6} completed  "
                   f"when a contact {describe_trigger(workflow.trigger)}")


@workflows_group.command("show")
@click.argument("name")
def show_command(name: str) -> None:
    """A workflow's trigger, rules and steps in reading order, with counts per step."""
    workflow = _find(name)
    published = f"version {workflow.version}" if workflow.version else "never activated"
    click.echo(f"{workflow.name} ({workflow.status}, {published})")
    if workflow.description:
        click.echo(workflow.description)
    click.echo(f"Starts when a contact {describe_trigger(workflow.trigger)}.")
    for line in describe_rules(workflow.rules):
        click.echo(line)
    totals = service.totals(workflow)
    click.echo(f"Contacts: {totals['active']} in it, {totals['completed']} completed, "
               f"{totals['exited']} exited, {totals['converted']} converted.")
    steps = service.current(workflow)
    if service.has_unpublished(workflow) and workflow.version:
        click.echo("(The draft has changes not activated yet; these are the live steps.)")
    if not steps.get("steps"):
        click.echo("No steps yet.")
        return
    counts = service.step_counts(workflow)
    click.echo("Steps:")
    width = max(len(key) for key in steps["steps"])
    for key in wf_definition.order(steps):
        count = counts.get(key, {"waiting": 0, "passed": 0})
        click.echo(f"  {key:<{width}}  {describe_step(steps['steps'][key])}"
                   f"  [{count['waiting']} here, {count['passed']} passed]")


@workflows_group.command("enrol")
@click.argument("name")
@click.option("--email", required=True, help="The contact's email address.")
def enrol_command(name: str, email: str) -> None:
    """Enrol one contact by hand (the workflow's enrolment rules still apply)."""
    workflow = _find(name)
    try:
        result = manual.enrol_email(workflow, email, BY)
    except WorkflowError as exc:
        raise click.ClickException(str(exc)) from None
    if result.unknown:
        raise click.ClickException(f"No contact with the address {result.unknown[0]!r}.")
    if result.enrolled:
        click.echo(f"Enrolled {email.strip()} in “{workflow.name}”.")
    else:
        click.echo(f"Not enrolled: {email.strip()} is in “{workflow.name}” already, or was "
                   "before and its rules do not enrol again.")


@workflows_group.command("templates")
def templates_command() -> None:
    """The ready-made workflows `create-from` starts."""
    width = max(len(slug) for slug in library.TEMPLATES)
    for template in library.TEMPLATES.values():
        click.echo(f"{template.slug:<{width}}  {template.title}: {template.description}")


@workflows_group.command("create-from")
@click.argument("template")
@click.option("--name", default="", help="The new workflow's name (default: the template's).")
def create_from_command(template: str, name: str) -> None:
    """Start a workflow from a template, as a draft to review and activate."""
    try:
        workflow = library.create_from(template, name=name, by=BY)
    except WorkflowError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Created “{workflow.name}” as a draft with {len(workflow.draft['steps'])} "
               f"steps. Review its emails and steps, then: magnet workflows activate "
               f"\"{workflow.name}\"")


def _switch(name: str, action: str) -> None:
    workflow = _find(name)
    try:
        if action == "activate":
            if workflow.status != "draft":
                raise WorkflowError(f"“{workflow.name}” is {workflow.status} already"
                                    + (": resume it instead." if workflow.status == "paused"
                                       else "."))
            workflow = service.publish(workflow, by=BY)
        elif action == "pause":
            if workflow.status != "active":
                raise WorkflowError(f"“{workflow.name}” is {workflow.status}: only an active "
                                    "workflow can be paused.")
            workflow = service.pause(workflow, by=BY)
        else:
            if workflow.status != "paused":
                raise WorkflowError(f"“{workflow.name}” is {workflow.status}, not paused.")
            workflow = service.resume(workflow, by=BY)
    except WorkflowError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"“{workflow.name}” is {workflow.status}.")


@workflows_group.command("activate")
@click.argument("name")
def activate_command(name: str) -> None:
    """Activate a draft: its steps become version 1 and its trigger starts enrolling."""
    _switch(name, "activate")


@workflows_group.command("pause")
@click.argument("name")
def pause_command(name: str) -> None:
    """Hold everyone where they are; nobody new comes in until it is resumed."""
    _switch(name, "pause")


@workflows_group.command("resume")
@click.argument("name")
def resume_command(name: str) -> None:
    """Go on after a pause (steps that came due meanwhile run now, in sending hours)."""
    _switch(name, "resume")
