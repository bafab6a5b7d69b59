"""The segment builder: new and edit pages, its htmx partials, and the live count.

Every action works twice: with htmx, a button posts the form to `segments_builder`, which sends
back only the row or group that changed; without JavaScript, the same button submits the page,
which applies the action and shows the page again, saving nothing. Only *Save* saves. The live
count compiles the draft on every pause in typing and answers with the count or what to fix,
never an error page.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from flask import (
    flash,
    get_template_attribute,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from engine import audit
from engine.admin import segment_form
from engine.admin.blueprint import bp
from engine.admin.segment_form import Draft
from engine.auth import require_role
from engine.contacts.models import CONSENT_STATES, LIFECYCLE_STAGES, Subscription, Tag
from engine.contacts.service import custom_fields
from engine.db import db, write
from engine.events.types import EventType, all_types
from engine.segments import describe, service
from engine.segments.compiler import compile_condition, plugin_kinds
from engine.segments.conditions import ConditionError, ConditionKind
from engine.segments.models import Segment

log = logging.getLogger("magnet.admin")


@dataclass
class Builder:
    """What the builder's menus offer, each read once per request and only when shown (the
    live count and a row's words need only the types and kinds)."""

    segment_id: int | None
    types: dict[str, EventType] = field(default_factory=all_types)
    kinds: dict[str, ConditionKind] = field(default_factory=plugin_kinds)

    @cached_property
    def custom(self) -> dict[str, Any]:
        return custom_fields()

    @cached_property
    def fields(self) -> list[tuple[str, str]]:
        # A retired field is offered no more; a condition already on one keeps working.
        custom = sorted(((k, f.label) for k, f in self.custom.items() if not f.retired),
                        key=lambda pair: pair[1].lower())
        return list(describe.FIELD_LABELS.items()) + custom

    @cached_property
    def events(self) -> list[EventType]:
        return sorted(self.types.values(), key=lambda t: t.label.lower())

    @cached_property
    def segments(self) -> list[tuple[int, str]]:
        """The other segments (a segment cannot be in itself)."""
        return [(s.id, s.name) for s in service.all_segments() if s.id != self.segment_id]

    @cached_property
    def tags(self) -> list[str]:
        return list(db.session.scalars(select(Tag.name).order_by(Tag.name).limit(500)))

    @cached_property
    def lists(self) -> list[str]:
        return list(db.session.scalars(select(Subscription.list_slug).distinct()
                                       .order_by(Subscription.list_slug).limit(200)))

    kind_labels = describe.KIND_LABELS
    operator_labels = describe.OPERATOR_LABELS
    created_labels = describe.CREATED_LABELS
    list_labels = describe.LIST_LABELS
    stages = LIFECYCLE_STAGES
    consent_states = CONSENT_STATES
    kind_ops = segment_form.KIND_OPS

    def words(self, condition: dict[str, Any]) -> str:
        return describe.describe(condition, self.types, self.kinds)

    def error(self, condition: dict[str, Any]) -> str | None:
        """What to fix in this one condition, or None."""
        if problem := segment_form.missing(condition):
            return problem
        try:
            compile_condition(condition, self.kinds)
        except ConditionError as exc:
            return str(exc)
        except Exception:  # a plugin's kind that fails: said here, never an error page
            log.exception("segment condition %r could not be compiled", condition.get("kind"))
            return "This condition could not be checked: its plugin failed (see the log)."
        return None

    def field_type(self, name: str) -> str:
        return segment_form.field_type(name)

    def operators(self, name: str) -> tuple[str, ...]:
        return segment_form.operators(name)

    def choices_of(self, name: str) -> list[str]:
        defined = self.custom.get(name)
        if defined is not None and defined.type == "boolean":
            return ["true", "false"]
        return list(defined.choices or []) if defined is not None else []

    def properties(self, event: str) -> list[tuple[str, str]]:
        """The event's properties a condition can compare, with their types (a boolean's value
        is chosen as yes or no)."""
        declared = self.types.get(event)
        if declared is None:
            return []
        return [(name, kind.value) for name, kind in sorted(declared.properties.items())]


def _page(segment: Segment | None, draft: Draft, builder: Builder, name: str,
          description: str, error: str | None = None, status: int = 200) -> Any:
    return render_template("admin/segment_edit.html", segment=segment, draft=draft, b=builder,
                           name=name, description=description, error=error), status


def _unfinished(draft: Draft, builder: Builder) -> bool:
    return any(builder.error(condition) for group in draft.groups
               for _, condition in group.conditions)


def _posted(builder: Builder) -> Draft:
    return segment_form.read(request.form, builder.types, builder.kinds)


@bp.route("/segments/new", methods=["GET", "POST"])
@require_role("editor")
def segments_new() -> Any:
    return _edit(None)


@bp.route("/segments/<int:segment_id>/edit", methods=["GET", "POST"])
@require_role("editor")
def segments_edit(segment_id: int) -> Any:
    return _edit(db.get_or_404(Segment, segment_id))


def _edit(segment: Segment | None) -> Any:
    builder = Builder(segment.id if segment else None)
    if request.method == "GET":
        return _page(segment, Draft.of(segment.definition if segment else None), builder,
                     segment.name if segment else "", segment.description if segment else "")
    draft = _posted(builder)
    name = (request.form.get("name") or "").strip()[:200]
    description = (request.form.get("description") or "").strip()[:1000]
    if request.form.get("action"):  # a builder button, without JavaScript: nothing is saved
        segment_form.apply(draft, request.form["action"])
        return _page(segment, draft, builder, name, description)
    if _unfinished(draft, builder):
        return _page(segment, draft, builder, name, description,
                     "some conditions need more (see below each one).", 400)
    before = _described(segment) if segment else None
    try:
        with write():
            saved = service.save(name, draft.definition(), description,
                                 segment.id if segment else None)
            after = _described(saved)
            audit.record(current_user, "segment.update" if segment else "segment.create",
                         saved.name, _changes(before, after) if before else after)
    except service.SegmentError as exc:
        return _page(segment, draft, builder, name, description, str(exc), 400)
    flash(f"Segment “{saved.name}” saved. Its members are being found; it can be used "
          "meanwhile.")
    return redirect(url_for("admin.segments_show", segment_id=saved.id))


def _described(segment: Segment) -> dict[str, Any]:
    return {"name": segment.name, "description": segment.description,
            "conditions": describe.describe_definition(segment.definition)}


def _changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    changed = {key: {"old": before[key], "new": value} for key, value in after.items()
               if before[key] != value}
    return changed or {"segment": "saved unchanged"}


@bp.post("/segments/builder")
@require_role("editor")
def segments_builder() -> Any:
    """An htmx builder action: the row or group it changed (nothing for a removal)."""
    builder = Builder(request.form.get("segment_id", type=int))
    draft = _posted(builder)
    what, g, c = segment_form.apply(draft, request.form.get("action", ""))
    # After the swap, so the count reads the form as changed (on <body> when the button
    # that asked went with its row).
    headers = {"HX-Trigger-After-Settle": "segment-changed"}
    group = draft.group(g)
    if what == "group" and group is not None:
        block = get_template_attribute("admin/_segment_builder.html", "group_block")
        return block(group, builder), 200, headers
    if what == "condition" and group is not None:
        row = get_template_attribute("admin/_segment_builder.html", "condition_row")
        return row(g, c, dict(group.conditions)[c], builder), 200, headers
    return "", 200, headers


@bp.post("/segments/words/<int:g>/<int:c>")
@require_role("editor")
def segments_words(g: int, c: int) -> Any:
    """One row's condition in words, and what it still needs."""
    builder = Builder(request.form.get("segment_id", type=int))
    group = _posted(builder).group(g)
    condition = dict(group.conditions).get(c) if group is not None else None
    if condition is None:
        return ""
    return get_template_attribute("admin/_segment_builder.html", "sentence")(condition, builder)


@bp.post("/segments/count")
@require_role("editor")
def segments_count() -> Any:
    """The live count: how many contacts the draft matches now, or what to fix first."""
    builder = Builder(request.form.get("segment_id", type=int))
    draft = _posted(builder)
    count, error = None, None
    if _unfinished(draft, builder):
        error = "Some conditions need more: see below each one."
    else:
        try:
            count = service.count_matching(draft.definition())
        except ConditionError as exc:
            error = str(exc)
        except SQLAlchemyError as exc:  # e.g. a comparison the database refuses
            db.session.rollback()
            log.warning("segment count failed: %s", exc)
            error = "The database could not count these conditions; change them and try again."
    return render_template("admin/_segment_count.html", count=count, error=error)
