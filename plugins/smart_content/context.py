"""This request's `rules.Context`, gathered once and kept on `g`.

Only what the page's rules read is computed: the country lookup and the user-agent parse when a
rule asks for them (both cached per value), the known visitor's profile (one Redis GET) only
when a rule reads it. The visit state (`visit.advance`) is computed once per request too: the
cache-variant hook, the shortcode and the response hook all share it.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import user_agents
from flask import g, request

from engine.contacts import visitors
from plugins.smart_content import blocks, geo, profiles, visit
from plugins.smart_content.rules import Context

MAX_QUERY = 20
MAX_LANGUAGES = 5


@lru_cache(maxsize=4096)
def device(agent: str) -> str:
    parsed = user_agents.parse(agent or "")
    return "tablet" if parsed.is_tablet else "mobile" if parsed.is_mobile else "desktop"


def state() -> tuple[dict[str, Any], int]:
    """The visit state after this page view, and the pages seen before it (once per request)."""
    ctx_g = g._get_current_object()
    found: tuple[dict[str, Any], int] | None = ctx_g.get("smart_state")
    if found is None:
        req = request._get_current_object()
        cookies = req.cookies  # `in` first: a missing key's `get` raises and catches inside
        old = visit.read(cookies.get(visit.COOKIE) if visit.COOKIE in cookies else None)
        ctx_g.smart_state_old = old
        found = ctx_g.smart_state = visit.advance(
            old, req.args, req.referrer or "", req.host,
            count_pages="pages_seen" in blocks.kinds_in_use())
    return found


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


def build(kinds: frozenset[str], with_profile: bool) -> Context:
    """The context of this request, for rules of these kinds."""
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
        profile=profiles.lookup(visitors.visitor_id(req)) if with_profile else None,
    )
