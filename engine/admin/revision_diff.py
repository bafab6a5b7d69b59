"""Two revisions of a page or post side by side, field by field, changed lines marked.

`difflib` pairs the lines of each changed field; rows carry plain text (the template escapes
it), so nothing an editor typed can become markup here. Long unchanged stretches are folded to
a few lines of context, as in any review tool.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

FIELDS = (("title", "Title"), ("slug", "Slug"), ("summary", "Summary"), ("body", "Text"),
          ("template", "Template"), ("tags", "Tags"), ("categories", "Categories"),
          ("author", "Author"), ("seo_title", "SEO title"),
          ("seo_description", "Meta description"), ("social_image", "Social image"),
          ("canonical_url", "Canonical URL"), ("noindex", "Hidden from search engines"),
          ("menu_order", "Navigation position (nav:)"), ("fields", "Template fields"))
CONTEXT = 3  # unchanged lines kept around each change


@dataclass(frozen=True)
class Row:
    """One line of the side-by-side table; a side's number is None where it has no line."""

    left_no: int | None
    left: str
    right_no: int | None
    right: str
    kind: str  # "same", "changed", "removed", "added", "fold"


@dataclass(frozen=True)
class FieldDiff:
    name: str
    label: str
    rows: list[Row]


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) if value else ""
    return str(value)


def _rows(old: list[str], new: list[str]) -> list[Row]:
    rows: list[Row] = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            span = list(range(i2 - i1))
            if len(span) > 2 * CONTEXT + 1:
                keep_head = span[:CONTEXT] if rows else []
                keep_tail = span[-CONTEXT:] if i2 < len(old) or j2 < len(new) else []
                folded = len(span) - len(keep_head) - len(keep_tail)
                for k in keep_head:
                    rows.append(Row(i1 + k + 1, old[i1 + k], j1 + k + 1, new[j1 + k], "same"))
                rows.append(Row(None, f"… {folded} unchanged lines …", None, "", "fold"))
                for k in keep_tail:
                    rows.append(Row(i1 + k + 1, old[i1 + k], j1 + k + 1, new[j1 + k], "same"))
            else:
                rows += [Row(i1 + k + 1, old[i1 + k], j1 + k + 1, new[j1 + k], "same")
                         for k in span]
            continue
        left, right = range(i1, i2), range(j1, j2)
        for k in range(max(len(left), len(right))):
            a = left[k] if k < len(left) else None
            b = right[k] if k < len(right) else None
            kind = "changed" if a is not None and b is not None else (
                "removed" if a is not None else "added")
            rows.append(Row(None if a is None else a + 1, "" if a is None else old[a],
                            None if b is None else b + 1, "" if b is None else new[b], kind))
    return rows


def compare(left: dict[str, Any], right: dict[str, Any]) -> list[FieldDiff]:
    """The fields that differ between two snapshots, each as side-by-side rows. (A field an
    older snapshot lacks counts as empty.)"""
    out = []
    for name, label in FIELDS:
        old, new = as_text(left.get(name)), as_text(right.get(name))
        if old != new:
            out.append(FieldDiff(name, label, _rows(old.splitlines(), new.splitlines())))
    return out
