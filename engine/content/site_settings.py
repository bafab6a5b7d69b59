"""The site's settings as an owner edits them (Admin → Site settings): what each field accepts,
the brand colours' contrast check, and saving only what changed.

The values live in `content_site_setting` (one row per key, `service.site_settings()`); the
same rows are seeded from `content/site.yaml` by `magnet content sync`, which leaves alone a
key an owner set here (`set_in = "admin"`). Every value is checked before anything is stored,
so a bad field saves nothing: colours are hex (they go into the page's `style` attribute, so
nothing else may get in), images are same-site paths or https URLs, the zone is an IANA name
and the language a BCP 47 tag.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from engine.content import cache
from engine.content.models import SiteSetting
from engine.db import db
from engine.zones import zone_named

HEX = re.compile(r"#(?:[0-9a-f]{3}|[0-9a-f]{6})")
LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z]{4})?(?:-(?:[a-z]{2}|[0-9]{3}))?"
                      r"(?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*", re.I)
TWITTER = re.compile(r"@?[A-Za-z0-9_]{1,15}")
# The default theme's colours (`themes/default/static/css/site.css`): what an empty field means.
THEME_COLOURS = {"color_primary": "#0a5bb0", "color_accent": "#0a5bb0",
                 "color_text": "#1b2330", "color_background": "#ffffff"}
BUTTON_TEXT = "#ffffff"  # the theme's text on a primary-coloured button
AA_TEXT = 4.5  # WCAG 2.x AA, normal text
CSS_NAMES = {"color_primary": "--brand-primary", "color_accent": "--brand-accent",
             "color_text": "--brand-text", "color_background": "--brand-background"}


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    kind: str  # line, text, url, colour, urls, twitter, zone, language, email
    limit: int = 300
    required: bool = False


FIELDS = (
    Field("name", "Site name", "line", 200),
    Field("tagline", "Tagline", "line", 300),
    Field("description", "Description", "text", 1000),
    Field("logo", "Logo", "url", 1000),
    Field("favicon", "Favicon", "url", 1000),
    Field("social_image", "Default social image", "url", 1000),
    Field("color_primary", "Primary colour", "colour"),
    Field("color_accent", "Accent colour", "colour"),
    Field("color_text", "Text colour", "colour"),
    Field("color_background", "Background colour", "colour"),
    Field("footer", "Footer text", "line", 500),
    Field("address", "Postal address", "line", 500),
    Field("same_as", "Social profiles", "urls", 4000),
    Field("twitter", "Twitter / X handle", "twitter"),
    Field("timezone", "Time zone", "zone"),
    Field("language", "Language", "language", 35),
    Field("sender_name", "Sender name", "line", 200),
    Field("sender_email", "Sender address", "email", 254),
)
KEYS = tuple(f.key for f in FIELDS)


class SettingsError(ValueError):
    """Values that cannot be saved: `errors` maps each field to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _url(text: str) -> str:
    if not text:
        return ""
    if any(c.isspace() or ord(c) < 32 for c in text):
        raise ValueError("no spaces or line breaks in an address")
    if text.startswith("/") and not text.startswith("//") and "\\" not in text:
        return text
    parts = urlsplit(text)
    if parts.scheme == "https" and parts.netloc and "\\" not in text:
        return text
    raise ValueError("a path on this site (/static/logo.png) or an https:// address")


def _email(text: str) -> str:
    if not text:
        return ""
    name, address = parseaddr(text)
    if (name or address != text or any(c in text for c in "\r\n\0 <>,;\"")
            or not re.fullmatch(r"[^@]+@[^@]+\.[^@]+", text)):
        raise ValueError("an address like news@example.com")
    return text


def clean_one(field: Field, raw: Any) -> Any:
    """The value of `field` as stored, or ValueError with the message for the owner."""
    if field.kind == "urls":
        items = raw if isinstance(raw, list) else str(raw or "").splitlines()
        found = [str(item).strip() for item in items if str(item).strip()]
        if sum(map(len, found)) > field.limit:
            raise ValueError(f"at most {field.limit:,} characters in all")
        for url in found:
            if not url.startswith("https://") or _url(url) != url:
                raise ValueError(f"“{url[:60]}” is not an https:// address")
        return found
    text = str(raw if raw is not None else "").strip()
    if field.kind == "text":
        text = text.replace("\r\n", "\n")
    elif any(c in text for c in "\r\n\0"):
        raise ValueError("one line, please")
    if len(text) > field.limit:
        raise ValueError(f"at most {field.limit:,} characters")
    if field.required and not text:
        raise ValueError("this cannot be empty")
    if not text:
        return ""
    if field.kind == "url":
        return _url(text)
    if field.kind == "colour":
        text = text.lower()
        if not HEX.fullmatch(text):
            raise ValueError("a hex colour like #0a5bb0")
        return "#" + "".join(c * 2 for c in text[1:]) if len(text) == 4 else text
    if field.kind == "twitter":
        if not TWITTER.fullmatch(text):
            raise ValueError("a handle like @example (letters, digits and _, 15 at most)")
        return "@" + text.lstrip("@")
    if field.kind == "zone":
        zone = zone_named(text)
        if zone is None:
            raise ValueError(f"“{text[:60]}” is not a time zone: choose one from the list")
        return zone.key
    if field.kind == "language":
        if not LANGUAGE.fullmatch(text):
            raise ValueError("a language tag like en, en-GB or pt-BR")
        return text
    if field.kind == "email":
        return _email(text)
    return text


def _luminance(colour: str) -> float:
    """Relative luminance, WCAG 2.x (sRGB channels linearised)."""
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(one: str, other: str) -> float:
    """The contrast ratio of two #rrggbb colours, 1 to 21."""
    high, low = sorted((_luminance(one), _luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def contrast_problems(values: dict[str, Any]) -> dict[str, str]:
    """The text pairs under WCAG AA (4.5:1) with these colours (an empty colour is the theme's),
    by the field to change."""
    colour = {key: values.get(key) or default for key, default in THEME_COLOURS.items()}
    pairs = (("color_primary", "button text", BUTTON_TEXT, "the primary colour",
              colour["color_primary"]),
             ("color_primary", "links in the primary colour", colour["color_primary"],
              "the background", colour["color_background"]),
             ("color_text", "the text colour", colour["color_text"], "the background",
              colour["color_background"]))
    problems: dict[str, str] = {}
    for key, fore_name, fore, back_name, back in pairs:
        ratio = contrast(fore, back)
        if ratio < AA_TEXT:
            problems[key] = problems.get(key, "") + (" " if key in problems else "") + (
                f"{fore_name.capitalize()} ({fore}) on {back_name} ({back}): contrast "
                f"{ratio:.2f}:1, under the 4.5:1 WCAG AA asks for.")
    return problems


def current() -> dict[str, Any]:
    """Every field's stored value ("" or [] when never set)."""
    rows = db.session.scalars(select(SiteSetting).where(SiteSetting.key.in_(KEYS)))
    stored = {row.key: row.value for row in rows}
    return {f.key: stored.get(f.key, [] if f.kind == "urls" else "") for f in FIELDS}


def _same(field: Field, new: Any, old: Any) -> bool:
    try:
        return new == clean_one(field, old)
    except ValueError:
        return False


def changes_from(form: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """`{key: (old, new)}` for each field `form` changes; SettingsError naming every bad field
    (and any text colour pair under WCAG AA) when one cannot be saved."""
    old = current()
    cleaned: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in FIELDS:
        if field.key not in form:
            cleaned[field.key] = old[field.key]  # a field the form did not send is kept
            continue
        try:
            cleaned[field.key] = clean_one(field, form[field.key])
        except ValueError as exc:
            errors[field.key] = str(exc)
    if not errors:
        errors = contrast_problems(cleaned)
    if errors:
        raise SettingsError(errors)
    by_key = {f.key: f for f in FIELDS}
    return {key: (old[key], value) for key, value in cleaned.items()
            if not _same(by_key[key], value, old[key])}


def store(changes: dict[str, Any]) -> None:
    """Store `{key: new value}` as set in the admin, inside the caller's `write()`, and make
    every process re-render its pages."""
    for key, value in changes.items():
        row = db.session.get(SiteSetting, key) or SiteSetting(key=key)
        row.value = value
        row.set_in = "admin"
        db.session.add(row)
    cache.invalidate()


def brand_style(settings: dict[str, Any]) -> str:
    """The CSS custom properties of the brand colours set (`--brand-primary:#0a5bb0;...`), for
    the theme's `<html style>`; only values that are hex colours, so nothing else gets in."""
    return "".join(f"{name}:{settings[key]};" for key, name in CSS_NAMES.items()
                   if isinstance(settings.get(key), str) and HEX.fullmatch(settings[key]))
