"""This request's `rules.Context`, gathered once and kept on `g`.

Only what the page's rules read is computed: the country lookup and the user-agent parse when a
rule asks for them (both cached per value), the known visitor's profile (one Redis GET) only
when a rule reads it. The visit state (`visit.advance`) is computed once per request too: the
cache-variant hook, the shortcode and the response hook all share it.

Most page views repeat one another's inputs: every visitor arriving from the same campaign link
without a cookie in the same minute, or one reader going from page to page with the same
cookie. The visit state is a function of those inputs alone (the cookie, the query string, the
referrer, the host, the minute), so it is worked out once per combination and kept (`Visit`,
at most `KEPT` of them per process, begun again when full), together with the choices and the
cookie made from it; on a cached page these were most of what personalising cost.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import user_agents
from flask import current_app, g, request

from engine.db import utcnow
from plugins.smart_content import blocks, geo, profiles, visit
from plugins.smart_content.rules import Context

MAX_QUERY = 20
MAX_LANGUAGES = 5
EXTENSION = "smart_content.visits"
OUTSIDE_VISIT = frozenset({"language", "country", "device"})  # read from the request itself


@lru_cache(maxsize=4096)
def device(agent: str) -> str:
    parsed = user_agents.parse(agent or "")
    return "tablet" if parsed.is_tablet else "mobile" if parsed.is_mobile else "desktop"


KEPT = 4096  # visits kept per process (a few hundred bytes each)
PER_VISIT = 64  # choices, and cookies, kept per visit


class Visit:
    """The visit state of one combination of inputs: never changed once made (requests share
    it), with what was worked out from it (`choices`, `cookies`), each keyed by the rest of
    what decided it."""

    __slots__ = ("state", "seen_before", "old", "choices", "cookies")

    def __init__(self, state: dict[str, Any], seen_before: int,
                 old: dict[str, Any] | None) -> None:
        self.state, self.seen_before, self.old = state, seen_before, old
        self.choices: dict[tuple[Any, ...], dict[int, int]] = {}
        self.cookies: dict[tuple[tuple[int, int], ...], str | None] = {}


def remember(found: dict[Any, Any], key: Any, value: Any, most: int) -> None:
    """Keep `value`, starting `found` again when it is full (a burst of new inputs costs only
    the work the table saves)."""
    if len(found) >= most:
        found.clear()
    found[key] = value


def visit_now() -> Visit:
    """This request's visit after this page view (once per request, and once per inputs)."""
    ctx_g = g._get_current_object()
    found: Visit | None = ctx_g.get("smart_visit")
    if found is None:
        req = request._get_current_object()
        cookies = req.cookies  # `in` first: a missing key's `get` raises and catches inside
        raw = cookies.get(visit.COOKIE) if visit.COOKIE in cookies else None
        referrer, host = req.referrer or "", req.host
        minute = int(utcnow().timestamp() // 60)
        count_pages = "pages_seen" in blocks.kinds_in_use()
        key = (raw, req.environ.get("QUERY_STRING", ""), referrer, host, minute, count_pages)
        kept: dict[Any, Visit] = current_app.extensions.setdefault(EXTENSION, {})
        found = kept.get(key)
        if found is None:
            old = visit.read(raw)
            state, seen_before = visit.advance(old, req.args, referrer, host, minute * 60,
                                               count_pages=count_pages)
            found = Visit(state, seen_before, old)
            remember(kept, key, found, KEPT)
        ctx_g.smart_visit = found
    return found


def state() -> tuple[dict[str, Any], int]:
    """The visit state after this page view, and the pages seen before it."""
    found = visit_now()
    return found.state, found.seen_before


def inputs(kinds: frozenset[str]) -> tuple[str, ...]:
    """What the rules of these kinds read besides the visit (when no profile is read)."""
    if not kinds & OUTSIDE_VISIT:
        return ()
    req = request._get_current_object()
    headers = req.headers
    return (headers.get("Accept-Language", "") if "language" in kinds else "",
            req.remote_addr or "" if "country" in kinds else "",
            headers.get("User-Agent", "") if "device" in kinds else "")


def languages(header: Any) -> tuple[str, ...]:
    found: list[str] = []
    for value, _quality in header:
        primary = str(value).split("-")[0].lower()
        if primary and primary != "*" and primary not in found:
            found.append(primary)
        if len(found) >= MAX_LANGUAGES:
            break
    return tuple(found)


def _utm(short: Any) -> dict[str, str]:
    """The cookie's short keys (s, m, c) as the rules name them."""
    short = short if isinstance(short, dict) else {}
    return {name: str(short.get(name[0], "")) for name in visit.UTM}


def build(kinds: frozenset[str], visitor: str | None = None) -> Context:
    """The context of this request, for rules of these kinds; with the profile of `visitor`
    (the browser's verified visitor id) when a rule reads one."""
    current, seen_before = state()
    req = request._get_current_object()
    ref = current.get("r") or ["none", ""]
    query = {}
    if "query" in kinds:
        for key in list(req.args.keys())[:MAX_QUERY]:
            query[key] = req.args.get(key, "")[:200]
    return Context(
        utm=_utm(current.get("u")), first_utm=_utm(current.get("f")),
        referrer_type=ref[0] if ref else "none",
        referrer_domain=ref[1] if len(ref) > 1 else "",
        languages=languages(req.accept_languages) if "language" in kinds else (),
        country=geo.country(req.remote_addr or "") if "country" in kinds else "",
        device=device(req.headers.get("User-Agent", "")) if "device" in kinds else "",
        query=query,
        returning=int(current.get("n", 1)) > 1,
        pages_seen=seen_before,
        profile=profiles.lookup(visitor) if visitor else None,
    )
