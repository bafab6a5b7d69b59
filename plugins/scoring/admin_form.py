"""The rule form: a new rule of each kind, or a rule changed, with a live count of the contacts
it touches before it is saved.

A fit rule's conditions are the segment builder's (its macros, its htmx endpoints, its form
fields: `engine.admin.segment_form`), so fit tests whatever a segment can. An engagement rule
chooses an event type and up to five property filters; changing the event or adding a filter
re-renders the filters with htmx, and without JavaScript the same buttons submit the page,
which shows it again changed and saves nothing, as the segment builder does. Only *Save* saves,
through `service.save_rule` (which checks the rule and queues its recalculation).

Form fields, besides the builder's: kind, name, points, active, event, f-<i>-prop, f-<i>-op,
f-<i>-value (filter rows; gaps are fine), cap_count, cap_period, days.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import MultiDict

from engine import audit
from engine.admin import segment_form
from engine.admin.segment_form import Draft as Conditions
from engine.admin.views.segment_builder import Builder
from engine.auth import require_role
from engine.db import db, write
from engine.events.types import EventType
from engine.segments.conditions import ConditionError
from plugins.scoring import service, state
from plugins.scoring.admin_counts import draft_reach
from plugins.scoring.models import CAP_PERIODS, RULE_KINDS, ScoringRule
from plugins.scoring.rules import (
    FILTER_LABELS,
    FILTER_OPS,
    MAX_FILTERS,
    UNSCORABLE,
    Draft,
    RuleError,
    check,
    describe,
)

log = logging.getLogger("magnet.scoring")
FILTER_ROW = re.compile(r"f-(\d{1,2})-prop")
PERIOD_LABELS = {"day": "a day", "week": "a week", "month": "a month", "ever": "in all"}
STORED = ("kind", "name", "points", "active", "definition", "event", "filters", "cap_count",
          "cap_period", "days")


@dataclass
class RuleForm:
    """A rule as its form shows it: what was typed, kept as typed until it is saved."""

    kind: str
    name: str = ""
    points: str = ""
    active: bool = True
    conditions: Conditions = field(default_factory=lambda: Conditions.of(None))
    event: str = ""
    filters: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    cap_count: str = ""
    cap_period: str = "day"
    days: str = ""

    @classmethod
    def of(cls, rule: ScoringRule) -> RuleForm:
        return cls(rule.kind, rule.name, str(rule.points), bool(rule.active),
                   Conditions.of(rule.definition if rule.kind == "fit" else None),
                   rule.event or "",
                   [(i, {"prop": str(f.get("prop", "")), "op": str(f.get("op", "equals")),
                         "value": _typed(f.get("value"))})
                    for i, f in enumerate(rule.filters or [])],
                   str(rule.cap_count) if rule.cap_count else "",
                   rule.cap_period or "day", str(rule.days) if rule.days else "")

    @classmethod
    def posted(cls, kind: str, form: MultiDict[str, str], builder: Builder) -> RuleForm:
        def get(name: str, limit: int = 500) -> str:
            return (form.get(name) or "").strip()[:limit]

        rows = sorted(int(found.group(1)) for key in form
                      if (found := FILTER_ROW.fullmatch(key)))[:MAX_FILTERS + 1]  # 6: refused
        filters = [(i, {"prop": get(f"f-{i}-prop", 100), "op": get(f"f-{i}-op", 20),
                        "value": get(f"f-{i}-value")}) for i in rows]
        conditions = segment_form.read(form, builder.types, builder.kinds) \
            if kind == "fit" else Conditions.of(None)
        period = get("cap_period", 10)
        return cls(kind, get("name", 300), get("points", 20), form.get("active") == "y",
                   conditions, get("event", 100), filters, get("cap_count", 20),
                   period if period in CAP_PERIODS else "day", get("days", 20))

    def values(self) -> dict[str, Any]:
        """What `rules.check` reads; blank filter rows are left out, and without a count
        there is no cap."""
        filters = [dict(f) for _, f in self.filters if f["prop"] or f["value"]]
        return {"kind": self.kind, "name": self.name, "points": self.points,
                "active": self.active, "definition": self.conditions.definition(),
                "event": self.event, "filters": filters,
                "cap_count": self.cap_count or None,
                "cap_period": self.cap_period if self.cap_count else "", "days": self.days}

    def apply(self, action: str) -> None:
        """A button pressed without JavaScript (or with it, through `part`)."""
        if self.kind == "fit":
            segment_form.apply(self.conditions, action)
        elif action == "add-filter" and len(self.filters) < MAX_FILTERS:
            row = max((i for i, _ in self.filters), default=-1) + 1
            self.filters.append((row, {"prop": "", "op": "equals", "value": ""}))
        elif action.startswith("remove-filter-"):
            self.filters = [(i, f) for i, f in self.filters if f"remove-filter-{i}" != action]


def _typed(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


@dataclass
class Choices:
    """What the form's menus offer (the builder's, for a fit rule's conditions)."""

    builder: Builder
    types: dict[str, EventType]

    @property
    def events(self) -> list[EventType]:
        return sorted((t for name, t in self.types.items() if name not in UNSCORABLE),
                      key=lambda t: t.label.lower())

    def properties(self, event: str) -> list[str]:
        declared = self.types.get(event)
        return sorted(declared.properties) if declared is not None else []

    filter_ops = FILTER_OPS
    filter_labels = FILTER_LABELS
    periods = PERIOD_LABELS
    max_filters = MAX_FILTERS


def _choices() -> Choices:
    builder = Builder(None)
    return Choices(builder, builder.types)


def _page(rule: ScoringRule | None, form: RuleForm, choices: Choices,
          error: str | None = None, status: int = 200) -> Any:
    count, reach_error = _reach(form, choices) if _ready(form) else (None, None)
    return render_template("scoring/rule_form.html", rule=rule, form=form, c=choices,
                           b=choices.builder, error=error, count=count,
                           reach_error=reach_error, kind=form.kind,
                           half_life=state.read().half_life_days), status


def _ready(form: RuleForm) -> bool:
    """Whether the draft says enough to be counted (a new rule's blank form does not)."""
    if form.kind == "fit":
        return any(c.get("field") or c.get("kind") != "field"
                   for g in form.conditions.groups for _, c in g.conditions)
    return bool(form.event if form.kind == "engagement" else form.days)


@require_role("editor")
def rule_new(kind: str) -> Any:
    if kind not in RULE_KINDS:
        abort(404)
    return _edit(None, kind)


@require_role("editor")
def rule_edit(rule_id: int) -> Any:
    rule = db.get_or_404(ScoringRule, rule_id)
    if rule.status == "deleting":
        abort(404)
    return _edit(rule, rule.kind)


def _edit(rule: ScoringRule | None, kind: str) -> Any:
    choices = _choices()
    if request.method == "GET":
        return _page(rule, RuleForm.of(rule) if rule else RuleForm(kind), choices)
    form = RuleForm.posted(kind, request.form, choices.builder)
    if request.form.get("action"):  # a form button, without JavaScript: nothing is saved
        form.apply(request.form["action"])
        return _page(rule, form, choices)
    if _unfinished(form, choices):
        return _page(rule, form, choices, "some conditions need more (see below each one).",
                     400)
    try:
        draft = check(form.values())
    except RuleError as exc:
        return _page(rule, form, choices, str(exc), 400)
    if rule is not None and _unchanged(rule, draft):
        flash(f"Rule “{rule.name}” unchanged.")
        return redirect(url_for("scoring_admin.rules"))
    before = _described(rule) if rule else None
    try:
        with write():
            saved = service.save_rule(form.values(), rule.id if rule else None)
            after = _described(saved)
            audit.record(current_user, "scoring.rule.update" if rule else "scoring.rule.create",
                         saved.name, _changes(before, after) if before else after)
    except RuleError as exc:
        return _page(rule, form, choices, str(exc), 400)
    flash(f"Rule “{saved.name}” saved. Scores are being recalculated for the contacts it "
          "touches; the list shows how far it has got.")
    return redirect(url_for("scoring_admin.rules", _anchor=f"rule-{saved.id}"))


def _unfinished(form: RuleForm, choices: Choices) -> bool:
    """A fit rule's condition row left half done (the builder says what it needs)."""
    return form.kind == "fit" and any(choices.builder.error(c) for g in form.conditions.groups
                                      for _, c in g.conditions)


def _unchanged(rule: ScoringRule, draft: Draft) -> bool:
    return all(getattr(rule, key) == getattr(draft, key) for key in STORED)


def _described(rule: ScoringRule) -> dict[str, Any]:
    return {"name": rule.name, "kind": rule.kind, "points": rule.points,
            "active": bool(rule.active), "rule": describe(rule)}


def _changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {key: {"old": before[key], "new": value} for key, value in after.items()
            if before[key] != value} or {"rule": "saved unchanged"}


@require_role("editor")
def rule_part() -> Any:
    """An htmx action on an engagement rule's form: its filters, shown again for the event
    chosen, with a row added or removed."""
    choices = _choices()
    form = RuleForm.posted("engagement", request.form, choices.builder)
    form.apply(request.form.get("action", ""))
    return render_template("scoring/_filters.html", form=form, c=choices), 200, \
        {"HX-Trigger-After-Settle": "rule-changed"}


@require_role("editor")
def rule_count() -> Any:
    """The live count: how many contacts the draft touches now, or what to fix first."""
    kind = request.form.get("kind", "")
    if kind not in RULE_KINDS:
        abort(400)
    choices = _choices()
    count, error = _reach(RuleForm.posted(kind, request.form, choices.builder), choices)
    return render_template("scoring/_count.html", count=count, reach_error=error, kind=kind)


def _reach(form: RuleForm, choices: Choices) -> tuple[int | None, str | None]:
    """(contacts the draft touches now, None), or (None, what to fix first)."""
    if _unfinished(form, choices):
        return None, "Some conditions need more: see below each one."
    try:
        return draft_reach(check({**form.values(), "name": "draft", "points": 1})), None
    except (RuleError, ConditionError) as exc:
        return None, str(exc)
    except SQLAlchemyError as exc:  # e.g. a comparison the database refuses
        db.session.rollback()
        log.warning("rule count failed: %s", exc)
        return None, "The database could not count this rule's contacts; change it and try again."
