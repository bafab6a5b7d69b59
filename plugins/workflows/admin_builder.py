"""The builder: a workflow read as a flow (its draft's steps in reading order, each with what
it does and how many contacts are at it, passed it and converted after it), and the draft
edited step by step - a step added on an exit, changed, or taken out - each saved through
`service.save_draft`, which refuses a broken draft with a message shown above the form."""
from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from engine import audit
from engine.admin.views.segment_builder import Builder
from engine.auth import require_role
from engine.db import db, write
from engine.events.types import all_types
from engine.forms.models import Form
from engine.mail.models import EmailTemplate
from plugins.workflows import admin_graph, admin_words, service
from plugins.workflows.admin_steps import UNITS, StepForm, unfinished
from plugins.workflows.conditions import ACTIVITY_KINDS
from plugins.workflows.definition import (
    GOAL_UNMET,
    STAGES,
    STEP_KINDS,
    WAIT_MODES,
    WorkflowError,
    exits,
)
from plugins.workflows.models import Workflow, WorkflowVersion

WAIT_LABELS = dict(zip(WAIT_MODES, ("For a while", "Until a date", "Until a weekday",
                                    "Until a date in a field", "Until a condition is met"),
                         strict=True))


def workflow_or_404(workflow_id: int) -> Workflow:
    workflow = db.get_or_404(Workflow, workflow_id)
    if workflow.status == "archived" and request.method == "POST":
        abort(404)
    return workflow


@require_role("viewer")
def builder(workflow_id: int) -> Any:
    workflow = db.get_or_404(Workflow, workflow_id)
    draft = workflow.draft or {"start": "", "steps": {}}
    steps = draft.get("steps", {})
    cards = [{"key": key, "step": steps[key], "depth": depth, "via": via,
              "label": STEP_KINDS[steps[key]["kind"]].label, "words": admin_words.step(steps[key]),
              "exits": exits(steps[key])} for key, depth, via in admin_graph.layout(draft)]
    return render_template(
        "workflows/builder.html", workflow=workflow, cards=cards, steps=steps,
        counts=service.step_counts(workflow), totals=service.totals(workflow),
        trigger=admin_words.trigger(workflow.trigger), rules=admin_words.rules(workflow.rules),
        unpublished=service.has_unpublished(workflow), next_due=service.next_due(workflow.id))


def _choices(workflow: Workflow, draft: dict[str, Any]) -> dict[str, Any]:
    steps = draft.get("steps", {})
    return {
        "kinds": STEP_KINDS, "wait_modes": WAIT_LABELS, "units": UNITS, "stages": STAGES,
        "unmet": dict(zip(GOAL_UNMET, ("wait until it is", "go on", "exit"), strict=True)),
        "templates": list(db.session.execute(select(EmailTemplate.id, EmailTemplate.name)
                                             .where(EmailTemplate.kind != "snapshot",
                                                    EmailTemplate.system == "")
                                             .order_by(EmailTemplate.name))),
        "email_steps": [(k, admin_words.step(s)) for k, s in steps.items()
                        if s["kind"] == "send_email"],
        "forms": list(db.session.execute(select(Form.slug, Form.title).order_by(Form.title))),
        "events": sorted(all_types().values(), key=lambda t: t.label.lower()),
        "activity": ACTIVITY_KINDS, "days": admin_words.DAYS,
    }


def _page(workflow: Workflow, form: StepForm, key: str, b: Builder, error: str | None = None,
          status: int = 200, **where: Any) -> Any:
    return render_template("workflows/step_form.html", workflow=workflow, form=form, key=key,
                           b=b, c=_choices(workflow, workflow.draft), error=error,
                           where=where, words=admin_words), status


def _where(workflow: Workflow) -> tuple[str, int]:
    """The exit a new step goes on: ?after=<key>&exit=<n> (none: the start)."""
    after = request.values.get("after", "")
    index = request.values.get("exit", 0, type=int)
    steps = workflow.draft.get("steps", {})
    if after and (after not in steps or not 0 <= index < len(exits(steps[after]))):
        abort(404)
    return after, index


@require_role("editor")
def step_new(workflow_id: int) -> Any:
    workflow = workflow_or_404(workflow_id)
    after, index = _where(workflow)
    kind = request.values.get("kind", "")
    if kind not in STEP_KINDS:
        exit_label = exits(workflow.draft["steps"][after])[index][0] if after else ""
        return render_template("workflows/step_kind.html", workflow=workflow, after=after,
                               index=index, exit_label=exit_label, kinds=STEP_KINDS)
    b = Builder(None)
    if request.method == "GET":
        return _page(workflow, StepForm.blank(kind), "", b, after=after, exit=index)
    form = StepForm.posted(kind, request.form, b)
    if request.form.get("do"):
        form.apply(request.form["do"])
        return _page(workflow, form, "", b, after=after, exit=index)
    if problem := unfinished(form, b):
        return _page(workflow, form, "", b, problem, 400, after=after, exit=index)
    key = admin_graph.new_key(workflow.draft, *_versions(workflow))
    draft = admin_graph.insert(workflow.draft, after, index, key, form.step(None))
    return _save(workflow, draft, "workflows.step.add", key, form, b,
                 after=after, exit=index)


@require_role("editor")
def step_edit(workflow_id: int, key: str) -> Any:
    workflow = workflow_or_404(workflow_id)
    old = workflow.draft.get("steps", {}).get(key)
    if old is None:
        abort(404)
    b = Builder(None)
    if request.method == "GET":
        return _page(workflow, StepForm.of(old), key, b)
    form = StepForm.posted(old["kind"], request.form, b)
    if request.form.get("do"):
        form.apply(request.form["do"])
        return _page(workflow, form, key, b)
    if problem := unfinished(form, b):
        return _page(workflow, form, key, b, problem, 400)
    draft = {"start": workflow.draft["start"],
             "steps": {**workflow.draft["steps"], key: form.step(old)}}
    return _save(workflow, draft, "workflows.step.edit", key, form, b)


def _save(workflow: Workflow, draft: dict[str, Any], action: str, key: str, form: StepForm,
          b: Builder, **where: Any) -> Any:
    try:
        with write():
            saved = service.save_draft(workflow, draft, by=current_user.email)
            audit.record(current_user, action, f"{saved.name} · {key}",
                         {"step": admin_words.step(saved.draft["steps"][key])})
    except WorkflowError as exc:
        return _page(workflow, form, key, b, str(exc), 400, **where)
    flash(f"Step {key} saved in the draft. Publish to put it live.")
    return redirect(url_for("workflows_admin.builder", workflow_id=workflow.id,
                            _anchor=f"step-{key}"))


def _versions(workflow: Workflow) -> list[dict[str, Any]]:
    return list(db.session.scalars(select(WorkflowVersion.definition).where(
        WorkflowVersion.workflow_id == workflow.id)))


@require_role("editor")
def step_delete(workflow_id: int, key: str) -> Any:
    workflow = workflow_or_404(workflow_id)
    if key not in workflow.draft.get("steps", {}):
        abort(404)
    back = redirect(url_for("workflows_admin.builder", workflow_id=workflow.id))
    draft, gone = admin_graph.remove(workflow.draft, key)
    if not draft["steps"]:
        flash("Not deleted: a workflow keeps at least one step.", "error")
        return back
    try:
        with write():
            saved = service.save_draft(workflow, draft, by=current_user.email)
            audit.record(current_user, "workflows.step.delete", f"{saved.name} · {key}",
                         {"removed": gone})
    except WorkflowError as exc:
        flash(f"Not deleted: {exc}", "error")
        return back
    flash(f"Step{'s' if len(gone) > 1 else ''} {', '.join(gone)} deleted from the draft.")
    return back
