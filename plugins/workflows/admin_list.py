"""The list of workflows, starting one from the library, and a workflow's life: publishing
the draft (asking where the contacts of removed steps go), pausing, resuming, archiving."""
from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from engine import audit
from engine.auth import require_role
from engine.db import write
from plugins.workflows import admin_words, library, service
from plugins.workflows.admin_builder import workflow_or_404
from plugins.workflows.definition import WorkflowError
from plugins.workflows.models import Workflow

END_CHOICE = "(end)"  # the publish form's "they finish there"


@require_role("viewer")
def index() -> Any:
    rows = [(w, admin_words.trigger(w.trigger), service.totals(w),
             service.has_unpublished(w)) for w in service.all_workflows()]
    return render_template("workflows/index.html", rows=rows, templates=library.TEMPLATES)


@require_role("editor")
def from_template(slug: str) -> Any:
    template = library.TEMPLATES.get(slug)
    name = (request.form.get("name") or (template.title if template else "")).strip()
    try:
        with write():
            made = library.create_from(slug, name, current_user.email)
            audit.record(current_user, "workflows.create", made.name, {"template": slug})
    except WorkflowError as exc:
        flash(f"Not created: {exc}", "error")
        return redirect(url_for("workflows_admin.index"))
    flash(f"Workflow “{made.name}” created from a template: check its steps, then activate it.")
    return redirect(url_for("workflows_admin.builder", workflow_id=made.id))


def _publish_page(workflow: Workflow, stranded: dict[str, int], error: str | None = None,
                  status: int = 200) -> Any:
    old = service.current(workflow).get("steps", {})
    removed = {key: (admin_words.label(key, old.get(key)), count)
               for key, count in stranded.items()}
    targets = [(key, f"{admin_words.label(key, step)}: {admin_words.step(step)}")
               for key, step in workflow.draft.get("steps", {}).items()]
    return render_template("workflows/publish.html", workflow=workflow, removed=removed,
                           targets=targets, end=END_CHOICE, error=error,
                           chosen=request.form), status


@require_role("editor")
def publish(workflow_id: int) -> Any:
    workflow = workflow_or_404(workflow_id)
    stranded = service.stranded(workflow)
    if request.method == "GET":
        return _publish_page(workflow, stranded)
    moves = {}
    for key in stranded:
        chosen = request.form.get(f"move-{key}", "")
        if chosen:
            moves[key] = service.END if chosen == END_CHOICE else chosen
    first = not workflow.version
    try:
        with write():
            saved = service.publish(workflow, moves, by=current_user.email)
            audit.record(current_user, "workflows.publish", saved.name,
                         {"version": saved.version, "moves": moves,
                          "steps": len(saved.draft.get("steps", {}))})
    except WorkflowError as exc:
        return _publish_page(workflow, stranded, str(exc), 400)
    flash(f"“{saved.name}” is active." if first else
          f"Version {saved.version} of “{saved.name}” published.")
    return redirect(url_for("workflows_admin.builder", workflow_id=saved.id))


def _status_change(workflow_id: int, change: Any, action: str, message: str) -> Any:
    workflow = workflow_or_404(workflow_id)
    before = workflow.status
    with write():
        saved = change(workflow, by=current_user.email)
        audit.record(current_user, action, saved.name,
                     {"status": {"old": before, "new": saved.status}})
    flash(message.format(name=saved.name) if saved.status != before else
          f"“{saved.name}” is {saved.status}: nothing changed.")
    target = "index" if saved.status == "archived" else "builder"
    return redirect(url_for(f"workflows_admin.{target}",
                            **({} if target == "index" else {"workflow_id": saved.id})))


@require_role("editor")
def pause(workflow_id: int) -> Any:
    return _status_change(workflow_id, service.pause, "workflows.pause",
                          "“{name}” paused: everyone waits where they are.")


@require_role("editor")
def resume(workflow_id: int) -> Any:
    return _status_change(workflow_id, service.resume, "workflows.resume",
                          "“{name}” resumed.")


@require_role("editor")
def archive(workflow_id: int) -> Any:
    return _status_change(workflow_id, service.archive, "workflows.archive",
                          "“{name}” archived: the contacts in it have left it.")


