"""Landing pages made of sections: the section types, their validation, and old pages read as
sections.

A page's `fields["sections"]` is an ordered list of dicts, each `{"type": ..., <field>: ...}`
(front matter `sections:` in a content file). The types and their fields are declared once,
here, in `TYPES`: the admin builds its section editor from them, the save refuses what does not
fit them, and a theme renders each type with its template `sections/section-<type>.html`.

Values are stored as plain text: themes escape them, and only `markdown` fields (a rich-text
section's body, a form section's intro) go through the Markdown, nh3 and shortcode pipeline of
page bodies. URL fields are checked on save (`javascript:` and friends are refused) and the
theme's `safe_url` filter checks them again on render.

Pages written before sections existed keep their top-level front matter (`headline`, `cta`,
`benefits`, `testimonials`...): `page_sections` reads them as sections with `from_legacy`, so
old content renders as it always did without being rewritten.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MAX_SECTIONS = 50
MAX_ITEMS = 50
MAX_TEXT = 500
MAX_LONG_TEXT = 20_000
ANCHOR = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
SLUG = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
SAFE_SCHEMES = ("http://", "https://", "mailto:", "tel:")


class SectionError(ValueError):
    """Sections that cannot be saved; the message names each section at fault."""


@dataclass(frozen=True)
class Field:
    """One field of a section type. `kind` is one of: text, long_text, markdown, url, image,
    slug, anchor, choice (one of `choices`), items (a list of dicts with `fields`)."""

    name: str
    label: str
    kind: str = "text"
    required: bool = False
    help: str = ""
    choices: tuple[str, ...] = ()
    fields: tuple[Field, ...] = ()  # the sub-fields of each item (kind "items")


@dataclass(frozen=True)
class SectionType:
    name: str
    label: str
    help: str
    fields: tuple[Field, ...] = field(default_factory=tuple)

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


ANCHOR_FIELD = Field("anchor", "Anchor", "anchor",
                     help="Lets a link jump to this section: #anchor (lower-case letters, digits, "
                          "hyphens).")


def _type(name: str, label: str, help_text: str, *fields: Field) -> SectionType:
    return SectionType(name, label, help_text, (*fields, ANCHOR_FIELD))


TYPES: dict[str, SectionType] = {t.name: t for t in (
    _type("hero", "Hero", "The page's opening: headline, lead, buttons and the offer.",
          Field("eyebrow", "Eyebrow"),
          Field("headline", "Headline", required=True),
          Field("subheadline", "Subheadline", "long_text"),
          Field("cta_label", "Primary button label"),
          Field("cta_url", "Primary button URL", "url"),
          Field("secondary_label", "Secondary button label"),
          Field("secondary_url", "Secondary button URL", "url"),
          Field("image", "Image URL", "image", help="Shown beside the headline when there is "
                                                    "no offer."),
          Field("image_alt", "Image description", help="For people who cannot see the image."),
          Field("offer_kind", "Offer kind", help="e.g. Free e-book · PDF"),
          Field("offer_title", "Offer title"),
          Field("offer_detail", "Offer detail", help="e.g. 32 pages · 6 templates")),
    _type("benefits", "Benefits", "What the visitor gets, as a grid of short points.",
          Field("heading", "Heading"),
          Field("items", "Benefits", "items", required=True, fields=(
              Field("title", "Title", required=True), Field("text", "Text", "long_text")))),
    _type("testimonials", "Testimonials", "Social proof: quotes from customers.",
          Field("heading", "Heading"),
          Field("items", "Quotes", "items", required=True, fields=(
              Field("quote", "Quote", "long_text", required=True),
              Field("name", "Name", required=True), Field("role", "Role")))),
    _type("stats", "Stats", "A few numbers that speak for the offer.",
          Field("heading", "Heading"),
          Field("items", "Numbers", "items", required=True, fields=(
              Field("value", "Value", required=True), Field("label", "Label", required=True)))),
    _type("form", "Form", "A form of the site, with a heading and an introduction.",
          Field("heading", "Heading"),
          Field("intro", "Introduction", "markdown", help="Markdown, like the page text."),
          Field("form", "Form slug", "slug", help="The form's slug, as in [form slug]; empty: "
                                                  "no form (the introduction may place one).")),
    _type("cta", "Call to action", "A band with a sentence and one button.",
          Field("heading", "Heading"),
          Field("text", "Text", "long_text"),
          Field("button_label", "Button label", required=True),
          Field("button_url", "Button URL", "url", required=True),
          Field("style", "Button style", "choice", choices=("primary", "secondary"))),
    _type("faq", "Questions and answers", "Questions that open to show their answer.",
          Field("heading", "Heading"),
          Field("items", "Questions", "items", required=True, fields=(
              Field("question", "Question", required=True),
              Field("answer", "Answer", "long_text", required=True)))),
    _type("rich_text", "Rich text", "Free text in Markdown (shortcodes work too).",
          Field("body", "Text", "markdown", required=True, help="Markdown, like the page text.")),
)}


def is_safe_url(url: str) -> bool:
    """Relative paths, anchors, queries and http(s)/mailto/tel: never `javascript:`, `data:`."""
    if any(ord(c) < 32 or c.isspace() for c in url):
        return False
    if url.startswith(("/", "#", "?")):
        return not url.startswith("//")
    return url.lower().startswith(SAFE_SCHEMES)


def _check_value(spec: Field, value: Any, where: str) -> list[str]:
    """What is wrong with one value (`where` names the section, the item, the field)."""
    if spec.kind == "items":
        if not isinstance(value, list):
            return [f"{where}: must be a list"]
        if len(value) > MAX_ITEMS:
            return [f"{where}: at most {MAX_ITEMS} entries"]
        errors = []
        for number, entry in enumerate(value, 1):
            errors += _check_fields(spec.fields, entry, f"{where}, entry {number}")
        return errors
    if not isinstance(value, str):
        return [f"{where}: must be text (put it in quotes)"]
    limit = MAX_LONG_TEXT if spec.kind in ("long_text", "markdown") else MAX_TEXT
    if len(value) > limit:
        return [f"{where}: at most {limit} characters"]
    if spec.kind in ("url", "image") and value and not is_safe_url(value):
        return [f"{where}: {value[:80]!r} is not a safe link (use https://…, /path or #anchor)"]
    if spec.kind == "image" and value.lower().startswith(("mailto:", "tel:")):
        return [f"{where}: an image needs an https:// or /path address"]
    if spec.kind in ("slug", "anchor") and value and not SLUG.fullmatch(value):
        return [f"{where}: use lower-case letters, digits and hyphens"]
    if spec.kind == "choice" and value and value not in spec.choices:
        return [f"{where}: choose one of {', '.join(spec.choices)}"]
    return []


def _check_fields(specs: tuple[Field, ...], data: Any, where: str) -> list[str]:
    if not isinstance(data, dict):
        return [f"{where}: must be a set of fields"]
    known = {spec.name for spec in specs}
    errors = [f"{where}: unknown field {name!r}" for name in data
              if name not in known and name != "type"]
    for spec in specs:
        value = data.get(spec.name)
        label = f"{where}, {spec.label.lower()}"
        if value in (None, "", []):
            if spec.required:
                errors.append(f"{label} is required")
            continue
        errors += _check_value(spec, value, label)
    return errors


def validate(sections: Any) -> None:
    """Refuse sections that do not fit their types, naming each section at fault."""
    if not isinstance(sections, list):
        raise SectionError("sections must be a list")
    if len(sections) > MAX_SECTIONS:
        raise SectionError(f"a page holds at most {MAX_SECTIONS} sections")
    errors: list[str] = []
    for number, section in enumerate(sections, 1):
        kind = section.get("type") if isinstance(section, dict) else None
        section_type = TYPES.get(kind) if isinstance(kind, str) else None
        if section_type is None:
            errors.append(f"section {number}: unknown type {kind!r} (known: "
                          f"{', '.join(TYPES)})")
            continue
        errors += _check_fields(section_type.fields, section,
                                f"section {number} ({section_type.label})")
    if errors:
        message = "; ".join(errors[:10])
        raise SectionError(message[0].upper() + message[1:] + ".")


# --- reading ----------------------------------------------------------------------------------

LEGACY_KEYS = ("eyebrow", "headline", "subheadline", "cta", "secondary_cta", "offer",
               "benefits_heading", "benefits", "proof_heading", "stats", "testimonials",
               "body_anchor", "body_label")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _link(value: Any, part: str) -> str:
    return _text(value.get(part)) if isinstance(value, dict) else ""


def _entries(value: Any, names: tuple[str, ...]) -> list[dict[str, str]]:
    rows = value if isinstance(value, list) else []
    return [{name: _text(row.get(name)) for name in names if row.get(name) not in (None, "")}
            for row in rows if isinstance(row, dict)]


def _compact(section: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in section.items() if v not in (None, "", [])}


def from_legacy(fields: dict[str, Any], title: str, summary: str) -> list[dict[str, Any]]:
    """A page without `sections`, as the sections it always showed: the hero (its headline
    defaults to the title, its lead to the summary), benefits, the proof band (stats, then
    quotes, under one heading) and the page's body with its form (`page_body`: the theme shows
    the rendered body there, through the `form` section as before)."""
    cta, secondary, offer = (fields.get(k) for k in ("cta", "secondary_cta", "offer"))
    hero = _compact({
        "type": "hero", "eyebrow": _text(fields.get("eyebrow")),
        "headline": _text(fields.get("headline")) or title,
        "subheadline": _text(fields.get("subheadline")) or summary,
        "cta_label": _link(cta, "label"), "cta_url": _link(cta, "url"),
        "secondary_label": _link(secondary, "label") if cta else "",
        "secondary_url": _link(secondary, "url") if cta else "",
        "offer_kind": (_link(offer, "kind") or "Free guide") if isinstance(offer, dict) else "",
        "offer_title": _link(offer, "title"), "offer_detail": _link(offer, "detail")})
    found = [hero]
    benefits = _entries(fields.get("benefits"), ("title", "text"))
    if benefits:
        found.append({"type": "benefits",
                      "heading": _text(fields.get("benefits_heading")) or "What you get",
                      "items": benefits})
    heading = _text(fields.get("proof_heading")) or "What people say"
    stats = _entries(fields.get("stats"), ("value", "label"))
    quotes = _entries(fields.get("testimonials"), ("quote", "name", "role"))
    if stats:
        found.append({"type": "stats", "heading": heading, "items": stats})
    if quotes:
        found.append(_compact({"type": "testimonials", "heading": "" if stats else heading,
                               "items": quotes}))
    found.append({"type": "form", "anchor": _text(fields.get("body_anchor")) or "get-it",
                  "page_body": True})
    return found


def has_sections(item: Any) -> bool:
    return isinstance((getattr(item, "fields", None) or {}).get("sections"), list)


def page_sections(item: Any) -> list[dict[str, Any]]:
    """The sections a landing page shows: its own, else its old fields read as sections.
    Entries of an unknown type (a type a theme or an older version knew) are skipped."""
    fields = getattr(item, "fields", None) or {}
    if has_sections(item):
        return [s for s in fields["sections"] if isinstance(s, dict) and s.get("type") in TYPES]
    return from_legacy(fields, getattr(item, "title", "") or "", getattr(item, "summary", "") or "")


def markdown_of(item: Any) -> str:
    """All the Markdown a page shows: its body and its sections' Markdown fields (what a
    plugin scans for the shortcodes a page places, e.g. `[smart slug]`)."""
    texts = [getattr(item, "body", "") or ""]
    for section in page_sections(item):
        spec = TYPES[section["type"]]
        texts += [str(section.get(f.name) or "") for f in spec.fields if f.kind == "markdown"]
    return "\n\n".join(text for text in texts if text)


def editable_sections(item: Any) -> list[dict[str, Any]]:
    """What the admin's section editor starts from: the page's sections; for an old page its
    fields read as sections, the body's text copied into the form section's introduction (once
    saved, the sections are the page)."""
    body = getattr(item, "body", "") or ""
    return [{k: v for k, v in dict(s, intro=body.strip()).items() if k != "page_body"}
            if s.get("page_body") else s for s in page_sections(item)]


def without_legacy(fields: dict[str, Any]) -> dict[str, Any]:
    """A page's fields once its sections are saved: the old top-level keys go (they would
    otherwise linger unused in its file)."""
    return {k: v for k, v in fields.items() if k not in LEGACY_KEYS}
