"""Editing a draft's graph: a step put on an exit (between the step and what followed), a step
taken out (what led to it now leads where it led), the layout the builder reads.

Pure functions over `{"start", "steps"}`; the views save the result through
`service.save_draft`, which checks it.
"""
from __future__ import annotations

import copy
import re
from typing import Any

from plugins.workflows.definition import exits, order

NUMBERED = re.compile(r"^s(\d+)$")


def new_key(*definitions: dict[str, Any]) -> str:
    """A key no version has used: a step's key names its mailing, so a removed step's key is
    never given to another step."""
    used = [int(m.group(1)) for d in definitions for key in d.get("steps", {})
            if (m := NUMBERED.match(key))]
    return f"s{max(used, default=0) + 1}"


def set_exit(step: dict[str, Any], index: int, target: str) -> None:
    """Point exit number `index` of `step` (in `definition.exits` order) at `target`."""
    kind = step["kind"]
    if kind == "if":
        step["yes" if index == 0 else "no"] = target
    elif kind == "split":
        step["paths"][index]["next"] = target
    elif kind == "wait" and step.get("mode") == "until_condition" and index == 1:
        step["timeout_next"] = target
    elif kind != "end":
        step["next"] = target
    for link in ("next", "yes", "no", "timeout_next"):
        if link in step and not step[link]:
            del step[link]


def insert(draft: dict[str, Any], after: str, index: int, key: str,
           step: dict[str, Any]) -> dict[str, Any]:
    """The draft with `step` as `key` on exit `index` of `after` ("" : at the start); what
    that exit led to now follows the new step's first exit."""
    out = copy.deepcopy(draft) if draft.get("steps") else {"start": "", "steps": {}}
    if after:
        before = out["steps"][after]
        old = exits(before)[index][1]
        set_exit(before, index, key)
    else:
        old, out["start"] = out.get("start", ""), key
    step = copy.deepcopy(step)
    if old and exits(step):
        set_exit(step, 0, old)
    out["steps"][key] = step
    return out


def reachable(draft: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    todo = [draft.get("start", "")]
    while todo:
        key = todo.pop()
        if key and key not in seen and key in draft["steps"]:
            seen.add(key)
            todo += [target for _label, target in exits(draft["steps"][key])]
    return seen


def remove(draft: dict[str, Any], key: str) -> tuple[dict[str, Any], list[str]]:
    """The draft without `key`: what led to it leads to its (first) exit; steps that only its
    other branches reached go with it. Returns (draft, keys removed)."""
    out = copy.deepcopy(draft)
    before = reachable(out)
    step = out["steps"].pop(key)
    follow = exits(step)[0][1] if exits(step) else ""
    if out.get("start") == key:
        out["start"] = follow
    for other in out["steps"].values():
        for index, (_label, target) in enumerate(exits(other)):
            if target == key:
                set_exit(other, index, follow)
    gone = sorted((before - reachable(out)) - {key})
    for lost in gone:
        out["steps"].pop(lost, None)
    return out, [key, *gone]


def layout(draft: dict[str, Any]) -> list[tuple[str, int, str]]:
    """(key, depth, how it is reached) in reading order: a branch's steps one level in from the
    step that opens it, with the exit's label ("yes of s3")."""
    steps = draft.get("steps", {})
    depth: dict[str, int] = {}
    via: dict[str, str] = {}
    for key in order(draft):
        depth.setdefault(key, 0)
        ways = exits(steps[key])
        for label, target in ways:
            if target and target not in depth:
                branching = len(ways) > 1
                depth[target] = depth[key] + (1 if branching else 0)
                via[target] = f"{label} of {key}" if branching else ""
    reached = reachable(draft)
    return [(key, min(depth[key], 4) if key in reached else 0,
             via.get(key, "") if key in reached else "not reached by any path")
            for key in order(draft)]
