"""The conditions of decisions, goals and waits: the segment builder's, plus what a contact did
since entering the workflow.

A condition is `{"match": "all"|"any", "conditions": [...]}`. Each part is either a segment
condition (`engine.segments.compiler.compile_condition`: fields, tags, lists, stage, activity,
segments, plugins' kinds such as scores) or one of `ACTIVITY_KINDS`, which look only at events
since the enrolment began:
- `{"kind": "wf_email", "action": "opened"|"clicked", "step": key or ""}` - a person (not a
  link scanner or a mail client's prefetch) opened / clicked the email sent by that step of
  this workflow, or any email when `step` is "";
- `{"kind": "wf_page", "path": "/pricing*"}` - viewed a page (`*` stands for anything);
- `{"kind": "wf_form", "form": slug or ""}` - submitted that form (or any);
- `{"kind": "wf_event", "type": name}` - any event of that type (e.g. `purchase`).

`holds(condition, enrolment)` answers for one enrolment with one query.
"""
from __future__ import annotations

import fnmatch
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, and_, bindparam, exists, false, or_, select

from engine.contacts.models import Contact
from engine.db import UTCDateTime, db
from engine.events.models import Activity
from engine.segments.compiler import compile_condition
from engine.segments.conditions import ConditionError
from plugins.workflows.errors import WorkflowError
from plugins.workflows.models import Enrolment

ACTIVITY_KINDS = {
    "wf_email": "Opened or clicked an email of this workflow (since entering)",
    "wf_page": "Visited a page (since entering)",
    "wf_form": "Submitted a form (since entering)",
    "wf_event": "Did something (an event, since entering)",
}
MAX_PARTS = 20
C = Contact.__table__.c
A = Activity.__table__.c


def mailing_key(workflow_id: int, step: str) -> str:
    """The mail core's mailing of a workflow's email step: its opens and clicks carry it."""
    return f"workflow:{workflow_id}:{step}"


def check(condition: Any) -> dict[str, Any]:
    """The condition as stored; WorkflowError saying what to fix."""
    if not isinstance(condition, dict):
        raise WorkflowError("A condition is an object with “match” and “conditions”.")
    match = condition.get("match") or "all"
    parts = condition.get("conditions")
    if match not in ("all", "any"):
        raise WorkflowError("Match “all” or “any” of the conditions.")
    if not isinstance(parts, list) or not parts:
        raise WorkflowError("Add at least one condition.")
    if len(parts) > MAX_PARTS:
        raise WorkflowError(f"At most {MAX_PARTS} conditions.")
    cleaned = []
    for part in parts:
        if not isinstance(part, dict):
            raise WorkflowError("Each condition is an object with a “kind”.")
        if part.get("kind") in ACTIVITY_KINDS:
            cleaned.append(_check_activity(part))
            continue
        try:
            compile_condition(part)
        except ConditionError as exc:
            raise WorkflowError(str(exc)) from None
        cleaned.append(part)
    return {"match": match, "conditions": cleaned}


def _check_activity(part: dict[str, Any]) -> dict[str, Any]:
    kind = part["kind"]
    text = {"wf_page": "path", "wf_form": "form", "wf_event": "type"}
    if kind == "wf_email":
        if part.get("action") not in ("opened", "clicked"):
            raise WorkflowError("Say whether the email was opened or clicked.")
        return {"kind": kind, "action": part["action"], "step": str(part.get("step") or "")}
    value = str(part.get(text[kind]) or "").strip()[:500]
    if kind in ("wf_page", "wf_event") and not value:
        raise WorkflowError("Give the page address." if kind == "wf_page"
                            else "Give the event type.")
    if kind == "wf_page" and not value.startswith(("/", "*")):
        raise WorkflowError("A page address starts with / (use * for any part).")
    return {"kind": kind, text[kind]: value}


def glob_to_like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def path_matches(pattern: str, path: str) -> bool:
    """A page path against a pattern where `*` stands for anything (query strings ignored)."""
    return fnmatch.fnmatchcase(path.split("?", 1)[0], pattern.replace("[", "[[]"))


SINCE = bindparam("wf_since", type_=UTCDateTime())
CONTACT = bindparam("wf_contact", type_=Integer())


def _activity_sql(part: dict[str, Any], workflow_id: int, since: Any) -> Any:
    where = [A.contact_id == C.id, A.occurred_at >= since]
    kind = part["kind"]
    if kind == "wf_email":
        where.append(A.type == ("email_opened" if part["action"] == "opened"
                                else "email_clicked"))
        where.append(or_(A.properties["machine"].as_boolean().is_(None),
                         A.properties["machine"].as_boolean() == false()))
        if part["step"]:
            where.append(A.properties["mailing"].as_string()
                         == mailing_key(workflow_id, part["step"]))
    elif kind == "wf_page":
        where.append(A.type == "page_view")
        where.append(A.properties["path"].as_string().like(glob_to_like(part["path"]),
                                                           escape="\\"))
    elif kind == "wf_form":
        where.append(A.type == "form_submitted")
        if part.get("form"):
            where.append(A.properties["form"].as_string() == part["form"])
    else:
        where.append(A.type == part["type"])
    return exists(select(A.id).where(*where))


def sql(condition: dict[str, Any], workflow_id: int, since: Any) -> Any:
    """The condition as a test on the contacts table (segment parts as the builder compiles
    them; activity parts as EXISTS over the contact's events since `since`)."""
    parts = [(_activity_sql(p, workflow_id, since) if p.get("kind") in ACTIVITY_KINDS
              else compile_condition(p).sql) for p in condition["conditions"]]
    return and_(*parts) if condition.get("match", "all") == "all" else or_(*parts)


def holds(condition: dict[str, Any], *, contact_id: int, workflow_id: int,
          since: datetime, cache: dict[Any, Any] | None = None) -> bool:
    """Whether the condition is true now for this contact (activity counted from `since`).
    `cache`: a dict kept by the caller for a batch, so a condition asked of many contacts is
    built once (the contact and the time are parameters)."""
    key = (workflow_id, json.dumps(condition, sort_keys=True))
    statement = cache.get(key) if cache is not None else None
    if statement is None:
        statement = select(C.id).where(C.id == CONTACT, sql(condition, workflow_id, SINCE))
        if cache is not None:
            cache[key] = statement
    return db.session.execute(statement, {"wf_contact": contact_id, "wf_since": since}) \
        .first() is not None


def holding(condition: dict[str, Any], workflow_id: int, enrolment_ids: list[int]) -> set[int]:
    """Of these enrolments, those for whose contact the condition is true now, each counting
    activity since its own start: one query for all of them."""
    E = Enrolment.__table__.c
    statement = (select(E.id).join(Contact.__table__, C.id == E.contact_id)
                 .where(E.id.in_(enrolment_ids), sql(condition, workflow_id, E.entered_at)))
    return set(db.session.scalars(statement))


def event_types(condition: dict[str, Any]) -> set[str] | None:
    """The event types after which the condition may have become true, or None for "any
    change" (a segment condition on fields, scores, segments…). Lets the event handler skip
    checking goals and waits for events that cannot matter."""
    types: set[str] = set()
    for part in condition.get("conditions", []):
        kind = part.get("kind")
        if kind == "wf_email":
            types.add("email_opened" if part["action"] == "opened" else "email_clicked")
        elif kind == "wf_page":
            types.add("page_view")
        elif kind == "wf_form":
            types.add("form_submitted")
        elif kind == "wf_event":
            types.add(part["type"])
        else:
            try:
                compiled = compile_condition(part)
            except ConditionError:
                return None
            if compiled.fields or compiled.segments or compiled.every_change \
                    or compiled.candidates:
                return None
            types |= set(compiled.events)
    return types
