"""Events in plain words: the sentence a person reads on a contact's timeline, and the details
behind it.

The words come from each type's declaration (`EventType.sentence`), so a plugin words its own
events and the core never needs to know them. What is shown is cut to what a marketer needs:
addresses lose their query string (where tokens and signatures travel), values that look like a
token or a signature are hidden, identifiers and network addresses are left out, and nothing is
shown as raw JSON.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from engine.events.types import EventType

PLACEHOLDER = re.compile(r"\{([a-z0-9_|]+)(?::(file|host))?\}")
# Property names never shown: identifiers, network addresses, secrets.
HIDDEN_NAME = re.compile(r"(^|_)(id|ids|ip|token|signature|sig|secret|key|hash|visit|password|"
                         r"message_id|user_agent|agent|zone|submission_id)$")
# A run of letters, digits and separators long enough to be a token, a signature or a digest;
# `looks_secret` decides (a file name like the-small-business-email-playbook.pdf is not one).
TOKEN_RUN = re.compile(r"[A-Za-z0-9_\-.=+/~]{16,}")
HIDDEN = "(hidden)"
MAX_SHOWN = 200


@dataclass(frozen=True)
class Part:
    """A piece of a sentence: plain words, or a value (shown emphasised, maybe as a link)."""

    text: str
    value: bool = False
    href: str = ""


def page_address(url: str) -> str:
    """An http(s) address without its query string and fragment, or "" for anything else."""
    try:
        parts = urlsplit(url or "")
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def clean_value(value: Any) -> str:
    """A property's value as shown: text, numbers and yes/no only; addresses without their
    query; anything that looks like a token hidden."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if not isinstance(value, str):
        return ""
    text = value.strip()
    if text.lower().startswith(("http://", "https://")):
        text = page_address(text) or ""
        path = urlsplit(text).path
        if looks_secret(path):
            text = text[:len(text) - len(path)] + "/…"
        return text[:MAX_SHOWN]
    return HIDDEN if looks_secret(text) else text[:MAX_SHOWN]


def looks_secret(text: str) -> bool:
    """Whether `text` carries something like a token: a piece of 16 characters or more without
    a separator mixing letters and digits (base64, hex digests), or a run mixing digits with
    letters of both cases. Long words and runs of one letter are not tokens."""
    for run in TOKEN_RUN.findall(text):
        if any(len(piece) >= 16 and re.search(r"\d", piece) and re.search(r"[A-Za-z]", piece)
               for piece in re.split(r"[-_./~]", run)):
            return True
        if re.search(r"\d", run) and re.search(r"[a-z]", run) and re.search(r"[A-Z]", run):
            return True
    return False


def _modified(text: str, modifier: str | None) -> str:
    if modifier == "host":
        host = (urlsplit(text).hostname or text).lower()
        return host[4:] if host.startswith("www.") else host
    if modifier == "file":
        stem = PurePosixPath(unquote(urlsplit(text).path or text)).stem
        words = re.sub(r"[-_]+", " ", stem).strip()
        return words[:1].upper() + words[1:] if words else ""
    return text


def sentence(declared: EventType | None, type_name: str, properties: Mapping[str, Any],
             url: str = "") -> list[Part]:
    """The parts of an event's sentence; the type's label (or its name made readable) when it
    declares none or a value it needs is missing."""
    fallback = [Part(declared.label if declared else type_name.replace("_", " ").capitalize())]
    if declared is None or not declared.sentence:
        return fallback
    parts: list[Part] = []
    link = page_address(url) if declared.links_page else ""
    position = 0
    for match in PLACEHOLDER.finditer(declared.sentence):
        if match.start() > position:
            parts.append(Part(declared.sentence[position:match.start()]))
        found = ""
        for name in match.group(1).split("|"):
            raw = url if name == "url" else properties.get(name)
            found = clean_value(raw) if raw not in (None, "") else ""
            if found and found != HIDDEN:
                break
        found = _modified(found, match.group(2)) if found != HIDDEN else ""
        if not found:
            return fallback
        parts.append(Part(found, value=True, href=link))
        link = ""  # only the first value links
        position = match.end()
    if position < len(declared.sentence):
        parts.append(Part(declared.sentence[position:]))
    return parts


def details(properties: Mapping[str, Any], url: str = "") -> list[tuple[str, str]]:
    """`[(label, value)]` of an event's properties a person may read: identifiers, addresses
    of the network, secrets and nested data left out."""
    shown: list[tuple[str, str]] = []
    page = page_address(url)
    if page:
        shown.append(("Page", page))
    for name, value in properties.items():
        if HIDDEN_NAME.search(name) or isinstance(value, (dict, list)) or value in (None, ""):
            continue
        text = clean_value(value)
        if text and text != HIDDEN:
            shown.append((name.replace("_", " ").capitalize(), text))
    return shown
