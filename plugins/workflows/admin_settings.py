"""A workflow's settings form (new workflow, or its settings changed): name, description, what
starts it and its rules, read from the form exactly as shown, so saving without a change
stores what was there.

Every trigger kind's inputs are in the page (`t_<input>`); a script shows only the chosen
kind's, and without it all show, labelled. Rules: `enrol`, `again_days`,
`exit_on_unsubscribe`, `exit_segment_id`, `quiet_from`, `quiet_to`, `days` (ticked weekdays).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from engine import audit
from engine.auth import require_role
from engine.db import db, write
from engine.events.types import all_types
from engine.forms.models import Form
from engine.mail.models import Mailing
from engine.segments import service as segments
from plugins.workflows import admin_words, service
from plugins.workflows.definition import (
    SCORES,
    STAGES,
    TRIGGER_KINDS,
    WorkflowError,
    check_rules,
    check_trigger,
)
from plugins.workflows.models import Workflow

TRIGGER_INPUTS = ("form", "pattern", "tag", "list", "segment_id", "score", "threshold", "stage",
                  "field", "offset_days", "hour", "type", "mailing")


@dataclass
class SettingsForm:
    name: str = ""
    description: str = ""
    kind: str = "form_submitted"
    t: dict[str, str] = field(default_factory=lambda: {"hour": "9", "offset_days": "0",
                                                       "score": "combined"})
    yearly: bool = True
    enrol: str = "once"
    again_days: str = ""
    exit_on_unsubscribe: bool = True
    exit_segment_id: str = ""
    quiet_from: str = ""
    quiet_to: str = ""
    days: list[int] = field(default_factory=lambda: list(range(7)))

    @classmethod
    def of(cls, workflow: Workflow) -> SettingsForm:
        t, r = workflow.trigger or {}, workflow.rules or {}
        shown = cls().t | {k: str(v) for k, v in t.items() if k in TRIGGER_INPUTS}

        def text(value: Any) -> str:
            return "" if value is None else str(value)

        return cls(workflow.name, workflow.description or "", t.get("kind", "manual"), shown,
                   bool(t.get("yearly", True)), r.get("enrol", "once"), text(r.get("again_days")),
                   bool(r.get("exit_on_unsubscribe", True)), text(r.get("exit_segment_id")),
                   text(r.get("quiet_from")), text(r.get("quiet_to")),
                   list(r.get("days", range(7))))

    @classmethod
    def posted(cls, form: MultiDict[str, str]) -> SettingsForm:
        def get(name: str, limit: int = 500) -> str:
            return (form.get(name) or "").strip()[:limit]

        days = sorted({int(d) for d in form.getlist("days") if d in "0123456" and len(d) == 1})
        return cls(get("name", 300), (form.get("description") or "").strip()[:2000],
                   get("trigger", 40), {k: get("t_" + k) for k in TRIGGER_INPUTS},
                   form.get("t_yearly") == "y", get("enrol", 10), get("again_days", 10),
                   form.get("exit_on_unsubscribe") == "y", get("exit_segment_id", 12),
                   get("quiet_from", 4), get("quiet_to", 4), days)

    def trigger(self) -> dict[str, Any]:
        return {"kind": self.kind, **{k: v for k, v in self.t.items() if v != ""},
                "yearly": self.yearly}

    def rules(self) -> dict[str, Any]:
        out: dict[str, Any] = {"enrol": self.enrol, "exit_on_unsubscribe": self.exit_on_unsubscribe,
                               "quiet_from": self.quiet_from, "quiet_to": self.quiet_to,
                               "days": self.days}
        if self.enrol == "again":
            out["again_days"] = self.again_days
        if self.exit_segment_id:
            out["exit_segment_id"] = self.exit_segment_id
        return out


def choices() -> dict[str, Any]:
    """What the settings form's menus offer."""
    return {
        "trigger_kinds": TRIGGER_KINDS, "scores": SCORES, "stages": STAGES,
        "forms": list(db.session.execute(select(Form.slug, Form.title).order_by(Form.title))),
        "segments": [(s.id, s.name) for s in segments.all_segments()],
        "events": sorted(all_types().values(), key=lambda t: t.label.lower()),
        "mailings": list(db.session.scalars(select(Mailing.key).order_by(Mailing.key)
                                            .limit(300))),
        "days": admin_words.DAYS,
    }


def _page(workflow: Workflow | None, form: SettingsForm, error: str | None = None,
          status: int = 200) -> Any:
    return render_template("workflows/settings.html", workflow=workflow, form=form,
                           c=choices(), error=error), status


@require_role("editor")
def new() -> Any:
    if request.method == "GET":
        return _page(None, SettingsForm())
    form = SettingsForm.posted(request.form)
    try:
        with write():
            made = service.create(form.name, trigger=form.trigger(), rules=form.rules(),
                                  description=form.description, by=current_user.email)
            audit.record(current_user, "workflows.create", made.name, described(made))
    except WorkflowError as exc:
        return _page(None, form, str(exc), 400)
    flash(f"Workflow “{made.name}” created. Add its steps, then activate it.")
    return redirect(url_for("workflows_admin.builder", workflow_id=made.id))


@require_role("editor")
def settings(workflow_id: int) -> Any:
    workflow = db.get_or_404(Workflow, workflow_id)
    if request.method == "GET":
        return _page(workflow, SettingsForm.of(workflow))
    form = SettingsForm.posted(request.form)
    try:
        trigger, rules = check_trigger(form.trigger()), check_rules(form.rules())
    except WorkflowError as exc:
        return _page(workflow, form, str(exc), 400)
    before = described(workflow)
    if (trigger, rules, form.name, form.description) == (
            workflow.trigger, workflow.rules, workflow.name, workflow.description):
        flash(f"Workflow “{workflow.name}” unchanged.")
        return redirect(url_for("workflows_admin.builder", workflow_id=workflow.id))
    try:
        with write():
            saved = service.update_settings(workflow, name=form.name,
                                            description=form.description, trigger=trigger,
                                            rules=rules, by=current_user.email)
            after = described(saved)
            audit.record(current_user, "workflows.settings", saved.name,
                         {k: {"old": before[k], "new": v} for k, v in after.items()
                          if before[k] != v})
    except WorkflowError as exc:
        return _page(workflow, form, str(exc), 400)
    flash(f"Settings of “{saved.name}” saved.")
    return redirect(url_for("workflows_admin.builder", workflow_id=saved.id))


def described(workflow: Workflow) -> dict[str, Any]:
    return {"name": workflow.name, "description": workflow.description,
            "trigger": admin_words.trigger(workflow.trigger),
            "rules": "; ".join(admin_words.rules(workflow.rules))}
