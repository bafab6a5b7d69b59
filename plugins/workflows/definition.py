"""What a workflow is made of, and the checks that keep a saved one runnable.

A workflow's steps are a graph stored as JSON: `{"start": key, "steps": {key: step}}`. Each step
has a `kind` and the keys of the steps it leads to (`next`; `yes`/`no` for a decision;
`paths` for a split; `timeout_next` for a wait on a condition). A missing or empty `next`
ends the enrolment there. The graph may branch and join but never loop, so an enrolment always
finishes and a step runs at most once per enrolment (which is what makes "exactly once per
(enrolment, step)" a unique key).

Conditions (decisions, goals, waits on a condition) are `{"match": "all"|"any", "conditions":
[...]}`; each is a segment condition (any kind the segment builder offers, plugins' too) or one
about what the contact did since entering (`conditions.ACTIVITY_KINDS`).

`check(definition)`, `check_trigger(trigger)` and `check_rules(rules)` return the cleaned value
or raise `WorkflowError` with a message fit to show the marketer; nothing is stored otherwise.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from engine.contacts.models import LIFECYCLE_STAGES
from plugins.workflows import conditions
from plugins.workflows.errors import WorkflowError

MAX_STEPS = 100
KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
STAGES = LIFECYCLE_STAGES


@dataclass(frozen=True)
class StepKind:
    kind: str
    label: str
    exits: Callable[[dict[str, Any]], list[tuple[str, str]]]  # [(label, next key)]
    clean: Callable[[dict[str, Any]], dict[str, Any]]


def _next(step: dict[str, Any]) -> list[tuple[str, str]]:
    return [("", step.get("next") or "")]


def _int(value: Any, name: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise WorkflowError(f"{name} must be a whole number.") from None
    if not low <= number <= high:
        raise WorkflowError(f"{name} must be between {low} and {high}.")
    return number


def _text(value: Any, name: str, limit: int = 200, required: bool = True) -> str:
    text = str(value or "").strip()
    if required and not text:
        raise WorkflowError(f"Give the {name}.")
    if len(text) > limit:
        raise WorkflowError(f"The {name} is longer than {limit} characters.")
    if "\r" in text or "\n" in text and limit <= 400:
        raise WorkflowError(f"The {name} must be on one line.")
    return text


def _base(step: dict[str, Any], *keys: str) -> dict[str, Any]:
    out = {"kind": step["kind"]}
    for key in keys:
        if step.get(key):
            out[key] = str(step[key])
    if step.get("note"):
        out["note"] = _text(step["note"], "note", 300, required=False)
    return out


def _send_email(step: dict[str, Any]) -> dict[str, Any]:
    out = _base(step, "next")
    out["template_id"] = _int(step.get("template_id"), "The email template", 1, 2**31)
    if step.get("subject"):
        out["subject"] = _text(step["subject"], "subject", 400)
    if step.get("list"):
        out["list"] = _text(step["list"], "list", 100)
    return out


WAIT_MODES = ("duration", "until_date", "until_weekday", "until_field", "until_condition")


def _wait(step: dict[str, Any]) -> dict[str, Any]:
    mode = step.get("mode") or "duration"
    if mode not in WAIT_MODES:
        raise WorkflowError(f"Unknown kind of wait “{mode}”.")
    out = _base(step, "next") | {"mode": mode}
    if mode == "duration":
        out["minutes"] = _int(step.get("minutes"), "The wait (minutes)", 1, 366 * 24 * 60)
    elif mode == "until_date":
        try:
            out["date"] = date.fromisoformat(str(step.get("date") or "")).isoformat()
        except ValueError:
            raise WorkflowError("Give the date to wait for as YYYY-MM-DD.") from None
        out["hour"] = _int(step.get("hour", 9), "The hour", 0, 23)
    elif mode == "until_weekday":
        days = step.get("weekdays") or []
        if not isinstance(days, list) or not days:
            raise WorkflowError("Pick at least one weekday to wait for.")
        out["weekdays"] = sorted({_int(d, "A weekday", 0, 6) for d in days})
        out["hour"] = _int(step.get("hour", 9), "The hour", 0, 23)
    elif mode == "until_field":
        out["field"] = _text(step.get("field"), "date field", 100)
        out["offset_days"] = _int(step.get("offset_days", 0), "The days before or after",
                                  -366, 366)
        out["hour"] = _int(step.get("hour", 9), "The hour", 0, 23)
    else:
        out["condition"] = check_condition(step.get("condition"))
        out["timeout_minutes"] = _int(step.get("timeout_minutes"), "The time-out (minutes)",
                                      1, 366 * 24 * 60)
        if step.get("timeout_next"):
            out["timeout_next"] = str(step["timeout_next"])
    return out


def _wait_exits(step: dict[str, Any]) -> list[tuple[str, str]]:
    if step.get("mode") == "until_condition":
        return [("met", step.get("next") or ""), ("timed out", step.get("timeout_next") or "")]
    return _next(step)


def _decision(step: dict[str, Any]) -> dict[str, Any]:
    return _base(step, "yes", "no") | {"condition": check_condition(step.get("condition"))}


def _split(step: dict[str, Any]) -> dict[str, Any]:
    paths = step.get("paths")
    if not isinstance(paths, list) or not 2 <= len(paths) <= 5:
        raise WorkflowError("A split has 2 to 5 paths.")
    cleaned = []
    for number, path in enumerate(paths):
        if not isinstance(path, dict):
            raise WorkflowError("Each path of a split has a share and a next step.")
        cleaned.append({"label": _text(path.get("label") or chr(65 + number), "path's label",
                                       40),
                        "share": _int(path.get("share"), "A path's share (%)", 1, 99),
                        "next": str(path.get("next") or "")})
    if sum(p["share"] for p in cleaned) != 100:
        raise WorkflowError("The shares of a split add up to 100%.")
    return _base(step) | {"paths": cleaned}


GOAL_UNMET = ("wait", "continue", "exit")


def _goal(step: dict[str, Any]) -> dict[str, Any]:
    unmet = step.get("unmet") or "wait"
    if unmet not in GOAL_UNMET:
        raise WorkflowError("When the goal is not met yet, the contact waits, goes on or exits.")
    return _base(step, "next") | {"condition": check_condition(step.get("condition")),
                                  "name": _text(step.get("name") or "Goal", "goal's name", 100),
                                  "unmet": unmet}


def _tag(step: dict[str, Any]) -> dict[str, Any]:
    action = step.get("action") or "add"
    if action not in ("add", "remove"):
        raise WorkflowError("A tag step adds or removes a tag.")
    return _base(step, "next") | {"action": action, "tag": _text(step.get("tag"), "tag", 100)}


def _set_field(step: dict[str, Any]) -> dict[str, Any]:
    return _base(step, "next") | {"field": _text(step.get("field"), "field", 100),
                                  "value": _text(step.get("value"), "value", 1000,
                                                 required=False)}


def _set_stage(step: dict[str, Any]) -> dict[str, Any]:
    stage = step.get("stage")
    if stage not in STAGES:
        raise WorkflowError(f"Pick a lifecycle stage ({', '.join(STAGES)}).")
    return _base(step, "next") | {"stage": stage}


def _list(step: dict[str, Any]) -> dict[str, Any]:
    action = step.get("action") or "add"
    if action not in ("add", "remove"):
        raise WorkflowError("A list step adds to or removes from a list.")
    return _base(step, "next") | {"action": action, "list": _text(step.get("list"), "list", 100)}


def _adjust_score(step: dict[str, Any]) -> dict[str, Any]:
    points = _int(step.get("points"), "The points", -10_000, 10_000)
    if points == 0:
        raise WorkflowError("Give the points to add (or take away, with a minus).")
    return _base(step, "next") | {"points": points}


def _notify(step: dict[str, Any]) -> dict[str, Any]:
    to = _text(step.get("to"), "address to notify", 1000)
    for address in (part.strip() for part in to.split(",")):
        if not re.fullmatch(r"[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+", address):
            raise WorkflowError(f"“{address}” is not an email address.")
    return _base(step, "next") | {"to": to, "subject": _text(step.get("subject"), "subject", 300),
                                  "message": _text(step.get("message"), "message", 5000,
                                                   required=False)}


def _webhook(step: dict[str, Any]) -> dict[str, Any]:
    from engine.web.outbound import OutboundRefused, check_url
    try:
        url = check_url(str(step.get("url") or ""))
    except OutboundRefused as exc:
        raise WorkflowError(f"The webhook: {exc}") from None
    return _base(step, "next") | {"url": url}


def _end(step: dict[str, Any]) -> dict[str, Any]:
    return _base(step)


STEP_KINDS: dict[str, StepKind] = {k.kind: k for k in (
    StepKind("send_email", "Send an email", _next, _send_email),
    StepKind("wait", "Wait", _wait_exits, _wait),
    StepKind("if", "If / else", lambda s: [("yes", s.get("yes") or ""),
                                           ("no", s.get("no") or "")], _decision),
    StepKind("split", "Random split", lambda s: [(p["label"], p.get("next") or "")
                                                 for p in s.get("paths", [])], _split),
    StepKind("goal", "Goal", _next, _goal),
    StepKind("tag", "Add or remove a tag", _next, _tag),
    StepKind("set_field", "Set a field", _next, _set_field),
    StepKind("set_stage", "Change lifecycle stage", _next, _set_stage),
    StepKind("list", "Add to or remove from a list", _next, _list),
    StepKind("adjust_score", "Adjust the score", _next, _adjust_score),
    StepKind("notify", "Notify someone by email", _next, _notify),
    StepKind("webhook", "Call a webhook", _next, _webhook),
    StepKind("end", "End", lambda s: [], _end),
)}


def exits(step: dict[str, Any]) -> list[tuple[str, str]]:
    """Where a step leads: [(label, next key)]; a key of "" ends the enrolment."""
    return STEP_KINDS[step["kind"]].exits(step)


def check_condition(condition: Any) -> dict[str, Any]:
    """A condition as stored, every part compiling; WorkflowError otherwise."""
    return conditions.check(condition)


def check(definition: Any) -> dict[str, Any]:
    """The steps as stored: every step valid, every link to a step that exists, no loop."""
    if not isinstance(definition, dict):
        raise WorkflowError("A workflow's steps are an object with “start” and “steps”.")
    steps = definition.get("steps")
    if not isinstance(steps, dict) or not steps:
        raise WorkflowError("Add at least one step.")
    if len(steps) > MAX_STEPS:
        raise WorkflowError(f"A workflow has at most {MAX_STEPS} steps.")
    cleaned: dict[str, dict[str, Any]] = {}
    for key, step in steps.items():
        if not isinstance(key, str) or not KEY.match(key):
            raise WorkflowError(f"“{key}” is not a step key (a-z, 0-9, - and _).")
        if not isinstance(step, dict) or step.get("kind") not in STEP_KINDS:
            raise WorkflowError(f"Step {key}: unknown kind of step.")
        try:
            cleaned[key] = STEP_KINDS[step["kind"]].clean(step)
        except WorkflowError as exc:
            raise WorkflowError(f"Step {key} ({STEP_KINDS[step['kind']].label}): {exc}") \
                from None
    start = definition.get("start")
    if start not in cleaned:
        raise WorkflowError("Say which step comes first.")
    for key, step in cleaned.items():
        for _label, target in exits(step):
            if target and target not in cleaned:
                raise WorkflowError(f"Step {key} leads to a step that does not exist ({target}).")
    _no_loops(start, cleaned)
    return {"start": start, "steps": cleaned}


def _no_loops(start: str, steps: dict[str, dict[str, Any]]) -> None:
    """Depth-first: a step met again on the path that leads to it is a loop."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(key: str) -> None:
        state[key] = 1
        for _label, target in exits(steps[key]):
            if not target:
                continue
            if state.get(target) == 1:
                raise WorkflowError(f"Step {target} leads back to itself: a workflow may branch "
                                    "and join, but not loop.")
            if target not in state:
                visit(target)
        state[key] = 2

    visit(start)


def order(definition: dict[str, Any]) -> list[str]:
    """The steps in reading order: from the start, each branch after the step that opens it;
    steps no path reaches come last."""
    steps, seen, out = definition.get("steps", {}), set(), []

    def visit(key: str) -> None:
        if not key or key in seen or key not in steps:
            return
        seen.add(key)
        out.append(key)
        for _label, target in exits(steps[key]):
            visit(target)

    visit(definition.get("start", ""))
    return out + [key for key in steps if key not in seen]


def goals(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: s for k, s in definition.get("steps", {}).items() if s["kind"] == "goal"}


# --- triggers and rules ------------------------------------------------------------------------

TRIGGER_KINDS = {
    "form_submitted": "Submits a form",
    "page_visited": "Visits a page",
    "tag_added": "Is tagged",
    "list_joined": "Joins a list",
    "segment_entered": "Enters a segment",
    "segment_left": "Leaves a segment",
    "score_reached": "Reaches a score",
    "stage_reached": "Reaches a lifecycle stage",
    "date_field": "A date field comes round (birthday, renewal)",
    "event": "A custom event happens",
    "email_opened": "Opens an email",
    "email_clicked": "Clicks a link in an email",
    "manual": "Only when enrolled by hand",
}
SCORES = ("combined", "fit", "engagement")


def check_trigger(trigger: Any) -> dict[str, Any]:
    if not isinstance(trigger, dict) or trigger.get("kind") not in TRIGGER_KINDS:
        raise WorkflowError("Pick what starts the workflow.")
    kind = trigger["kind"]
    out: dict[str, Any] = {"kind": kind}
    if kind == "form_submitted":
        out["form"] = _text(trigger.get("form"), "form", 100, required=False)
    elif kind == "page_visited":
        out["pattern"] = _text(trigger.get("pattern"), "page address (e.g. /pricing*)", 500)
        if not out["pattern"].startswith(("/", "*")):
            raise WorkflowError("A page address starts with / (use * for any part).")
    elif kind == "tag_added":
        out["tag"] = _text(trigger.get("tag"), "tag", 100)
    elif kind == "list_joined":
        out["list"] = _text(trigger.get("list"), "list", 100)
    elif kind in ("segment_entered", "segment_left"):
        out["segment_id"] = _int(trigger.get("segment_id"), "The segment", 1, 2**31)
    elif kind == "score_reached":
        score = trigger.get("score") or "combined"
        if score not in SCORES:
            raise WorkflowError("Pick the combined, fit or engagement score.")
        out |= {"score": score,
                "threshold": _int(trigger.get("threshold"), "The score", -100_000, 100_000)}
    elif kind == "stage_reached":
        if trigger.get("stage") not in STAGES:
            raise WorkflowError("Pick a lifecycle stage.")
        out["stage"] = trigger["stage"]
    elif kind == "date_field":
        out |= {"field": _text(trigger.get("field"), "date field", 100),
                "offset_days": _int(trigger.get("offset_days", 0), "The days before or after",
                                    -366, 366),
                "hour": _int(trigger.get("hour", 9), "The hour", 0, 23),
                "yearly": bool(trigger.get("yearly", True))}
    elif kind == "event":
        out["type"] = _text(trigger.get("type"), "event type", 100)
    elif kind in ("email_opened", "email_clicked"):
        out["mailing"] = _text(trigger.get("mailing"), "email", 200, required=False)
    return out


ENROL = ("once", "again", "always")


def check_rules(rules: Any) -> dict[str, Any]:
    rules = rules if isinstance(rules, dict) else {}
    enrol = rules.get("enrol") or "once"
    if enrol not in ENROL:
        raise WorkflowError("Enrol once, again after some days, or every time.")
    out: dict[str, Any] = {"enrol": enrol,
                           "exit_on_unsubscribe": bool(rules.get("exit_on_unsubscribe", True))}
    if enrol == "again":
        out["again_days"] = _int(rules.get("again_days"), "The days before enrolling again",
                                 1, 3650)
    if rules.get("exit_segment_id"):
        out["exit_segment_id"] = _int(rules["exit_segment_id"], "The segment", 1, 2**31)
    quiet = (rules.get("quiet_from"), rules.get("quiet_to"))
    if any(v not in (None, "") for v in quiet):
        if any(v in (None, "") for v in quiet):
            raise WorkflowError("Quiet hours need a start and an end.")
        out["quiet_from"] = _int(quiet[0], "Quiet hours' start", 0, 23)
        out["quiet_to"] = _int(quiet[1], "Quiet hours' end", 0, 23)
        if out["quiet_from"] == out["quiet_to"]:
            raise WorkflowError("Quiet hours start and end at different hours.")
    days = rules.get("days")
    if days is not None and days != list(range(7)):
        if not isinstance(days, list) or not days:
            raise WorkflowError("Pick at least one sending day.")
        out["days"] = sorted({_int(d, "A sending day", 0, 6) for d in days})
    return out
