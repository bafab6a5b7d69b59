"""The plugin's own first-party cookie: first touch, this visit, pages seen, variants seen.

Rules on "the first visit's UTM", "this visit's UTM on a later page", "new or returning" and
"pages seen before" need memory across requests that works on cached pages and without
JavaScript; the tracking beacon's visits are stored seconds later and belong to another plugin.
So the state travels in a small signed cookie (`magnet_sc`, HttpOnly, SameSite=Lax, about 200
bytes), advanced once per page view (`advance`) and written in the response only when it changed
(`engine`'s page cache still serves the body; the cookie is added after).

A visit ends after 30 minutes without a page view. The last-seen time is kept to the minute and
rewritten only when five minutes old, pages seen are counted only while a rule reads them and
stop at `MAX_PAGES`, and nothing is written while no rule reads the visit at all (`placing`), so
a reader going from page to page does not get a new cookie on every view.
"""
from __future__ import annotations

import base64
import json
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from itsdangerous import BadSignature

from engine.db import utcnow
from engine.web import signing

COOKIE = "magnet_sc"
MAX_AGE = 365 * 86400
VISIT_MINUTES = 30
STALE_MINUTES = 5
MAX_PAGES = 10  # "pages seen before" rules count up to here
MAX_SEEN = 20
UTM = ("source", "medium", "campaign")
SEARCH = ("google.", "bing.com", "duckduckgo.com", "yahoo.", "ecosia.org", "baidu.com",
          "yandex.", "qwant.com", "startpage.com", "search.brave.com")
SOCIAL = ("facebook.com", "t.co", "twitter.com", "x.com", "linkedin.com", "lnkd.in",
          "instagram.com", "reddit.com", "youtube.com", "pinterest.", "mastodon.", "threads.net",
          "news.ycombinator.com", "bsky.app")
WEBMAIL = ("mail.google.com", "outlook.live.com", "outlook.office.com", "mail.yahoo.com",
           "mail.proton.me", "webmail.")


def _listed(host: str, names: tuple[str, ...]) -> bool:
    return any(host == n or host.startswith(n) or host.endswith("." + n) or
               (n.endswith(".") and (f".{n}" in f".{host}")) for n in names)


@lru_cache(maxsize=4096)
def classify(referrer: str, own_host: str) -> tuple[str, str]:
    """(type, domain) of a referrer: search, social, email, other; ("none", "") when there is
    none or it is this site."""
    try:
        host = (urlsplit(referrer).hostname or "").lower()
    except ValueError:
        return "none", ""
    if not host or host == own_host.split(":")[0].lower():
        return "none", ""
    bare = host[4:] if host.startswith("www.") else host
    kind = ("email" if _listed(bare, WEBMAIL) else "search" if _listed(bare, SEARCH)
            else "social" if _listed(bare, SOCIAL) else "other")
    return kind, bare[:100]


def _signer() -> Any:
    return signing.signer("smart_content.visit")


@lru_cache(maxsize=8192)
def _decode(raw: str, key: str) -> str | None:
    """The JSON of a cookie value, or None when forged (cached per value: a browser sends the
    same cookie with every view until it changes). `key` keeps apps with other secrets apart."""
    try:
        payload = _signer().unsign(raw)
        return base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)).decode()
    except (BadSignature, ValueError, UnicodeDecodeError):
        return None


def read(raw: str | None) -> dict[str, Any] | None:
    """The state in a cookie value; None when absent, forged or malformed."""
    if not raw or len(raw) > 2000:
        return None
    text = _decode(raw, current_app.config["SECRET_KEY"])
    if text is None:
        return None
    try:
        state = json.loads(text)
    except ValueError:
        return None
    return state if isinstance(state, dict) else None


def encode(state: dict[str, Any]) -> str:
    text = json.dumps(state, separators=(",", ":"), sort_keys=True)
    return _signed(text, current_app.config["SECRET_KEY"])


@lru_cache(maxsize=4096)
def _signed(text: str, key: str) -> str:
    """The cookie value of a state's JSON (cached per value: every first-time visitor from the
    same kind of link in the same minute has the same state, and signing is most of a cached
    page's cost). `key` keeps apps with other secrets apart."""
    payload = base64.urlsafe_b64encode(text.encode()).rstrip(b"=")
    return _signer().sign(payload).decode()


def _utm(args: Any) -> dict[str, str]:
    found = {}
    for name in UTM:
        key = f"utm_{name}"
        value = args.get(key, "") if key in args else ""  # a missing key's `get` raises inside
        if value:
            found[name[0]] = str(value)[:100]
    return found


def advance(old: dict[str, Any] | None, args: Any, referrer: str, host: str,
            now: float | None = None, count_pages: bool = True) -> tuple[dict[str, Any], int]:
    """The state after this page view, and the pages seen before it. `count_pages`: whether
    any rule reads pages seen (if none does, views do not rewrite the cookie to count them).

    Keys: `f`/`fr` first visit's UTM and referrer; `u`/`r` this visit's; `n` visits;
    `p` pages seen (capped); `t` last seen (minute); `s` variants seen this visit."""
    minute = int((now if now is not None else utcnow().timestamp()) // 60)
    state = dict(old) if old else {}
    utm = _utm(args)
    ref = list(classify(referrer, host)) if referrer else ["none", ""]
    new_visit = not old or minute - int(state.get("t", 0)) > VISIT_MINUTES
    if new_visit:
        state.update(n=int(state.get("n", 0)) + 1, u=utm, r=ref, s=[], t=minute)
    else:
        if utm:  # a campaign link followed in the middle of a visit
            state.update(u=utm, r=ref)
        if minute - int(state.get("t", 0)) >= STALE_MINUTES:
            state["t"] = minute
    if not old:
        state.update(f=utm, fr=ref)
    seen_before = int(state.get("p", 0))
    if count_pages:
        state["p"] = min(seen_before + 1, MAX_PAGES)
    return state, seen_before


def saw(state: dict[str, Any], block_id: int, variant: int) -> None:
    """Remember a variant shown in this visit (for conversions)."""
    mark = f"{block_id}.{variant}"
    seen = state.get("s") or []
    if mark not in seen and len(seen) < MAX_SEEN:
        # A new list: the state came from `advance` as a shallow copy of the visit's state
        # before this page, whose list must stay as it was for the change to be seen.
        state["s"] = [*seen, mark]


def seen_in_visit(state: dict[str, Any] | None, now: float | None = None) -> list[tuple[int, int]]:
    """The (block id, variant) pairs shown in the visit still running."""
    if not state:
        return []
    minute = int((now if now is not None else utcnow().timestamp()) // 60)
    if minute - int(state.get("t", 0)) > VISIT_MINUTES:
        return []
    pairs = []
    for mark in state.get("s", []):
        block, _, variant = str(mark).partition(".")
        try:
            pairs.append((int(block), int(variant)))
        except ValueError:
            continue
    return pairs
