"""The section editor of a landing page, inside the page editor (`admin/_sections_editor.html`).

The editor posts each section's fields with the rest of the page: `section=<key>` once per
section, in the order the sections stand on the screen (moving one moves its inputs, so the
order needs no bookkeeping), `s<key>-type`, `s<key>-<field>`, and for a list field
`s<key>-<field>=<row>` per entry with `s<key>-<field>-<row>-<sub-field>`. Keys are arbitrary
(new sections get fresh ones in the browser). Values are stored as plain text, empty ones
left out; `engine.content.service` validates the result against `engine.content.sections` on
save, so a bad section is refused with the other errors of the page.
"""
from __future__ import annotations

import json
import re
from itertools import zip_longest
from types import SimpleNamespace
from typing import Any

from flask import render_template_string
from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from engine.content import sections
from engine.content.models import ContentItem

KEY = re.compile(r"[0-9a-z]{1,12}")
MARKER = "sections_editor"
PREVIEW = """{% for section in shown_sections %}{% set section_number = loop.index %}
{% include "sections/section-" ~ section.type ~ ".html" %}{% endfor %}"""


def applies(item: ContentItem) -> bool:
    """Pages shown with the landing template, or holding sections already."""
    return item.kind == "page" and (item.template == "landing" or sections.has_sections(item))


def editor(item: ContentItem, draft: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """What the partial shows: the sections (an unsaved draft's, if it is being restored)."""
    if not applies(item):
        return None
    kept = (draft or {}).get("sections")
    if not isinstance(kept, list):
        kept = ((draft or {}).get("fields") or {}).get("sections")
    shown = kept if isinstance(kept, list) else sections.editable_sections(item)
    return {"sections": [s for s in shown if isinstance(s, dict)], "types": sections.TYPES}


def _clean(value: str, spec: sections.Field) -> str:
    value = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if spec.kind not in ("long_text", "markdown"):
        value = " ".join(value.split())
    limit = sections.MAX_LONG_TEXT if spec.kind in ("long_text", "markdown") else sections.MAX_TEXT
    return value[:limit + 1]  # one more: the validation then says it is too long


def _keys(form: MultiDict, name: str, limit: int) -> list[str]:
    return [key for key in form.getlist(name)[:limit + 1] if KEY.fullmatch(key)]


def submitted(form: MultiDict) -> list[dict[str, Any]] | None:
    """The sections as posted, in order; None when the form holds no section editor."""
    if form.get(MARKER) != "1":
        return None
    found: list[dict[str, Any]] = []
    for key in _keys(form, "section", sections.MAX_SECTIONS):
        kind = (form.get(f"s{key}-type") or "")[:50]
        section: dict[str, Any] = {"type": kind}
        spec = sections.TYPES.get(kind)
        for field in spec.fields if spec else ():
            name = f"s{key}-{field.name}"
            if field.kind == "items":
                rows = []
                for row in _keys(form, name, sections.MAX_ITEMS):
                    entry = {sub.name: _clean(form.get(f"{name}-{row}-{sub.name}", ""), sub)
                             for sub in field.fields}
                    entry = {k: v for k, v in entry.items() if v}
                    if entry:
                        rows.append(entry)
                if rows:
                    section[field.name] = rows
            else:
                value = _clean(form.get(name, ""), field)
                if value:
                    section[field.name] = value
        found.append(section)
    return found


def changes(item: ContentItem, form: MultiDict) -> dict[str, Any]:
    """`{"fields": ...}` for `service.update_item` when the sections changed, else `{}`: an
    old page saved with its sections untouched keeps its old fields (and its body shown)."""
    posted = submitted(form)
    if posted is None or posted == sections.editable_sections(item):
        return {}
    fields = sections.without_legacy(dict(item.fields or {}))
    fields["sections"] = posted
    return {"fields": fields}


def current(item: ContentItem) -> list[dict[str, Any]]:
    """The sections the editor showed before a save (for the audit log's old values)."""
    return sections.editable_sections(item) if applies(item) else []


def _short(value: Any) -> Any:
    text = value if isinstance(value, str) or value is None else json.dumps(value)
    return text if text is None or len(text) <= 300 else text[:300] + "…"


def audit_details(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    """The audit log's old and new values: the order of types, and each field that changed
    (by position; long values cut)."""
    changed = []
    for number, (old, new) in enumerate(zip_longest(before, after, fillvalue={}), 1):
        for name in dict.fromkeys([*old, *new]):
            if old.get(name) != new.get(name):
                changed.append({"section": number, "field": name,
                                "old": _short(old.get(name)), "new": _short(new.get(name))})
    return {"types": {"old": [s.get("type") for s in before],
                      "new": [s.get("type") for s in after]}, "changes": changed[:40]}


def preview(form: MultiDict, item: ContentItem | None) -> Markup | None:
    """The sections as the theme renders them (the editor's live preview), or None when the
    form holds no section editor. A section that would be refused shows the reason first."""
    posted = submitted(form)
    if posted is None or item is None:
        return None
    problem = Markup("")
    try:
        sections.validate(posted)
    except sections.SectionError as exc:
        problem = Markup('<p class="field-error" role="alert">Not valid yet: {}</p>').format(exc)
    shown = [s for s in posted if s.get("type") in sections.TYPES]
    page = SimpleNamespace(**{name: getattr(item, name) for name in (
        "id", "kind", "slug", "title", "summary", "template", "body", "path")},
        fields={**(item.fields or {}), "sections": shown}, revision_id=None, tags=item.tags)
    html = render_template_string(PREVIEW, shown_sections=shown, item=page, body=Markup(""))
    return problem + Markup(html)
