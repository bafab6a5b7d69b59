"""One step's form: its kind's inputs read as typed and turned into the step as
`definition.check` reads it, and back; and the conditions of decisions, goals and waits.

Conditions are a list of rows `c-0-<n>-<input>` (the segment builder's field names, with one
group, numbered 0): each row is a segment condition - whose inputs are the segment builder's
own macro (`admin/_segment_builder.html`, `inputs`) and are read by `segment_form` - or one of
the workflow's activity kinds (`conditions.ACTIVITY_KINDS`). Buttons without JavaScript
(`action`: add-condition, remove-<n>, refresh) show the form again changed, saving nothing.

Wait lengths are typed as an amount and a unit (minutes, hours, days) and stored in minutes;
a stored length is shown in the largest unit that divides it, so saving it unchanged keeps it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from engine.admin import segment_form
from engine.admin.views.segment_builder import Builder
from plugins.workflows.conditions import ACTIVITY_KINDS

ROW = re.compile(r"c-0-(\d{1,2})-kind")
UNITS = {"minutes": 1, "hours": 60, "days": 1440}
TEXT_INPUTS = ("template_id", "subject", "list", "mode", "date", "hour", "field",
               "offset_days", "name", "unmet", "action", "tag", "value", "stage", "points",
               "to", "message", "url", "note")
BLANK_CONDITION = {"kind": "wf_email", "action": "opened", "step": ""}
MAX_PATHS = 5


def split_minutes(minutes: Any) -> tuple[str, str]:
    """(amount, unit) for a stored number of minutes."""
    if not isinstance(minutes, int) or minutes <= 0:
        return "", "days"
    for unit in ("days", "hours"):
        if minutes % UNITS[unit] == 0:
            return str(minutes // UNITS[unit]), unit
    return str(minutes), "minutes"


def _minutes(amount: str, unit: str) -> Any:
    try:
        return int(amount) * UNITS.get(unit, 1)
    except ValueError:
        return amount  # the check says it is not a whole number


@dataclass
class StepForm:
    """A step as its form shows it."""

    kind: str
    v: dict[str, str] = field(default_factory=dict)
    wait: tuple[str, str] = ("", "days")
    timeout: tuple[str, str] = ("", "days")
    weekdays: list[int] = field(default_factory=list)
    paths: list[dict[str, str]] = field(default_factory=list)
    match: str = "all"
    conditions: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    @classmethod
    def blank(cls, kind: str) -> StepForm:
        v = {"mode": "duration", "hour": "9", "offset_days": "0", "action": "add",
             "unmet": "wait", "name": "Goal"}
        paths = [{"label": "A", "share": "50"}, {"label": "B", "share": "50"}]
        return cls(kind, v, ("1", "days"), ("3", "days"), [], paths, "all",
                   [(0, dict(BLANK_CONDITION))])

    @classmethod
    def of(cls, step: dict[str, Any]) -> StepForm:
        v = {k: str(step[k]) for k in TEXT_INPUTS if k in step}
        condition = step.get("condition") or {}
        rows = list(enumerate(condition.get("conditions") or [])) or [(0, dict(BLANK_CONDITION))]
        paths = [{"label": str(p.get("label", "")), "share": str(p.get("share", ""))}
                 for p in step.get("paths", [])]
        return cls(step["kind"], v, split_minutes(step.get("minutes")),
                   split_minutes(step.get("timeout_minutes")), list(step.get("weekdays", [])),
                   paths, str(condition.get("match", "all")), rows)

    @classmethod
    def posted(cls, kind: str, form: MultiDict[str, str], builder: Builder) -> StepForm:
        def get(name: str, limit: int = 5000) -> str:
            return (form.get(name) or "").strip()[:limit]

        v = {k: get(k) for k in TEXT_INPUTS if k in form}
        rows = sorted(int(m.group(1)) for key in form if (m := ROW.fullmatch(key)))
        conditions = [(n, _condition(form, f"c-0-{n}-", builder)) for n in rows[:21]]
        paths = [{"label": get(f"p-{i}-label", 40), "share": get(f"p-{i}-share", 5)}
                 for i in range(MAX_PATHS) if get(f"p-{i}-label", 40) or get(f"p-{i}-share", 5)]
        weekdays = sorted({int(d) for d in form.getlist("weekdays") if d in "0123456"
                           and len(d) == 1})
        match = get("match", 3)
        return cls(kind, v, (get("amount", 10), get("unit", 10)),
                   (get("timeout_amount", 10), get("timeout_unit", 10)), weekdays, paths,
                   match if match in ("all", "any") else "all", conditions)

    def apply(self, action: str) -> None:
        if action == "add-condition" and len(self.conditions) < 20:
            row = max((n for n, _ in self.conditions), default=-1) + 1
            self.conditions.append((row, dict(BLANK_CONDITION)))
        elif action.startswith("remove-"):
            self.conditions = [(n, c) for n, c in self.conditions if f"remove-{n}" != action]
        elif action == "add-path" and len(self.paths) < MAX_PATHS:
            self.paths.append({"label": chr(65 + len(self.paths)), "share": ""})

    def condition(self) -> dict[str, Any]:
        return {"match": self.match, "conditions": [c for _, c in self.conditions]}

    def step(self, old: dict[str, Any] | None) -> dict[str, Any]:
        """The step for `definition.check`, keeping the links of the step it replaces."""
        old = old or {}
        out: dict[str, Any] = {"kind": self.kind}
        wanted = {"send_email": ("template_id", "subject", "list"),
                  "wait": ("mode", "date", "hour", "field", "offset_days"),
                  "goal": ("name", "unmet"), "tag": ("action", "tag"),
                  "set_field": ("field", "value"), "set_stage": ("stage",),
                  "list": ("action", "list"), "adjust_score": ("points",),
                  "notify": ("to", "subject", "message"), "webhook": ("url",)}
        for name in wanted.get(self.kind, ()) + ("note",):
            if self.v.get(name, "") != "":
                out[name] = self.v[name]
        if self.kind == "wait":
            mode = self.v.get("mode") or "duration"
            if mode == "duration":
                out["minutes"] = _minutes(*self.wait)
            elif mode == "until_weekday":
                out["weekdays"] = self.weekdays
            elif mode == "until_condition":
                out["condition"] = self.condition()
                out["timeout_minutes"] = _minutes(*self.timeout)
            for name in ("date", "field", "offset_days", "hour"):
                if not _uses(mode, name):
                    out.pop(name, None)
        if self.kind in ("if", "goal"):
            out["condition"] = self.condition()
        if self.kind == "split":
            nexts = [p.get("next", "") for p in old.get("paths", [])] \
                if old.get("kind") == "split" else []
            out["paths"] = [{"label": p["label"], "share": p["share"],
                             "next": nexts[i] if i < len(nexts) else ""}
                            for i, p in enumerate(self.paths)]
        for link in ("next", "yes", "no", "timeout_next"):
            if old.get(link):
                out[link] = old[link]
        return out


def _uses(mode: str, name: str) -> bool:
    return {"date": mode == "until_date", "field": mode == "until_field",
            "offset_days": mode == "until_field",
            "hour": mode in ("until_date", "until_weekday", "until_field")}[name]


def _condition(form: MultiDict[str, str], prefix: str, builder: Builder) -> dict[str, Any]:
    def get(name: str) -> str:
        return (form.get(prefix + name) or "").strip()[:500]

    kind = get("kind")
    if kind == "wf_email":
        return {"kind": kind, "action": get("action") or "opened", "step": get("step")}
    if kind == "wf_page":
        return {"kind": kind, "path": get("path")}
    if kind == "wf_form":
        return {"kind": kind, "form": get("form")}
    if kind == "wf_event":
        return {"kind": kind, "type": get("type")}
    return segment_form.condition_from(form, prefix, builder.types, builder.kinds)


def unfinished(form: StepForm, builder: Builder) -> str | None:
    """What a segment condition row still needs (the builder's words), or None."""
    if form.kind not in ("if", "goal") and not (
            form.kind == "wait" and form.v.get("mode") == "until_condition"):
        return None
    for _, condition in form.conditions:
        if condition.get("kind") not in ACTIVITY_KINDS and (problem := builder.error(condition)):
            return problem
    return None
