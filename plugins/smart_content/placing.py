"""Where blocks meet the request: the cache variant, the `[smart slug]` shortcode, the theme
sections a page hands to a block (`filter_section`), and what the response carries (the visit
cookie, privacy headers, view and conversion counts).

The page cache asks `filter_page_variant` before serving anything (a hit included). For a page
that places smart blocks the plugin chooses each block's variant there, keeps the choices on
`g` and returns them as the variant (`|sc:3=1,5=-1`): one cache entry per combination of matched
variants, bounded by the blocks' variants whatever the traffic. The shortcode and the sections
then render exactly those choices, so a stored page always holds what its key says. A block the
key did not account for (a page that became due since its blocks were read) renders its default
in a cached render: the same for everyone, never one visitor's variant served to another.

Editors (not cached) and "View as" (`g.smart_view_as`) choose as the block renders.
"""
from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from flask import current_app, g, request
from markupsafe import escape
from werkzeug.http import dump_cookie

from engine import plugins
from engine.contacts import visitors
from engine.content.render import render_markdown
from plugins.smart_content import blocks, context, counters, profiles, visit
from plugins.smart_content.rules import Context, choose

SLUG = "smart_content"
# Kinds that read the visit cookie: while no block uses one, pages without blocks leave it be.
VISIT_KINDS = frozenset({"utm_source", "utm_medium", "utm_campaign", "first_utm_source",
                         "first_utm_medium", "first_utm_campaign", "referrer_type",
                         "referrer_domain", "visitor", "pages_seen"})
PRIVATE = "private, max-age=0, must-revalidate"


def _choose_for_page(page_blocks: list[blocks.Block]) -> dict[int, int]:
    """Each block's matched variant. Without a profile to read (no rule reads one, or the
    browser has no visitor cookie, so it has none), the rules read only the visit and the
    request's inputs of their kinds, so the choice is kept with the visit."""
    kinds = frozenset().union(*(b.kinds for b in page_blocks))
    visitor = visitors.visitor_id(request) if any(b.needs_profile for b in page_blocks) \
        else None
    if visitor is not None:
        ctx = context.build(kinds, visitor)
        return {b.id: choose(list(b.variants), ctx) for b in page_blocks}
    now = context.visit_now()
    key = (tuple(b.stamp for b in page_blocks), context.inputs(kinds))
    found = now.choices.get(key)
    if found is None:
        ctx = context.build(kinds)
        found = {b.id: choose(list(b.variants), ctx) for b in page_blocks}
        context.remember(now.choices, key, found, context.PER_VISIT)
    return dict(found)


def page_variant(variant: str, req: Any) -> str:
    """`filter_page_variant`: the matched variant of each block on this page."""
    page_blocks = blocks.on_this_page()
    if not page_blocks:
        return variant
    choices = _choose_for_page(page_blocks)
    g.smart_choices = choices
    return f"{variant}|sc:" + ",".join(f"{b}={v}" for b, v in choices.items())


def content_of(block: blocks.Block, index: int) -> str:
    if 0 <= index < len(block.variants):
        return str(block.variants[index].get("content", ""))
    return block.default


def render_block(block: blocks.Block, index: int, ctx: dict[str, Any],
                 section: str = "") -> str:
    html = render_markdown(content_of(block, index), ctx,
                           cache_key=("smart", block.stamp, index))
    name = "default" if index < 0 else f"variant-{index + 1}"
    where = f' data-smart-section="{escape(section)}"' if section else ""
    return (f'<div class="smart-block" data-smart="{escape(block.slug)}" '
            f'data-smart-variant="{name}"{where}>{html}</div>')


def _index(block: blocks.Block) -> int:
    """The variant this render shows: the one the cache key holds, else chosen now."""
    forced: Context | None = g.get("smart_view_as")
    choices: dict[int, int] = g.setdefault("smart_choices", {})
    if forced is not None:
        return choose(list(block.variants), forced)
    if block.id in choices:
        return choices[block.id]
    if g.get("magnet_cache_key") is not None:
        return -1  # a cached render the key did not account for: see the module docstring
    choices[block.id] = _choose_for_page([block])[block.id]
    return choices[block.id]


def shortcode(args: dict[str, str], ctx: dict[str, Any]) -> str:
    """`[smart slug]`: the block's matched variant, else its default."""
    slug = args.get("0", "")
    block = blocks.all_blocks().get(slug)
    if block is None:
        return (f'<span class="shortcode-hint" role="note">[smart {escape(slug)}] '
                f'<small>(no smart block with this name)</small></span>')
    return render_block(block, _index(block), ctx)


def section(html: str, name: str, item: Any, req: Any) -> str:
    """`filter_section`: a section named in the page's `smart:` front matter shows the block's
    matched variant (or its default) instead of the theme's content. A name without a block
    (a typo, a deleted block) keeps the theme's content: the page never loses its hero."""
    slug = blocks.sections_of(item).get(name)
    block = blocks.all_blocks().get(slug or "")
    if block is None:
        return html
    return render_block(block, _index(block), {"request": req, "item": item}, section=name)


def _cookie(value: str, req: Any) -> str:
    secure = req.is_secure or bool(current_app.config.get("SESSION_COOKIE_SECURE", False))
    return _set_cookie_header(value, secure, int(time.time()))


@lru_cache(maxsize=1024)
def _set_cookie_header(value: str, secure: bool, second: int) -> str:
    """The `Set-Cookie` value, made once per value and second (its `Expires` counts from now)."""
    return dump_cookie(visit.COOKIE, value, max_age=visit.MAX_AGE, httponly=True,
                       samesite="Lax", secure=secure, path="/")


def _page_response(response: Any, req: Any, ctx_g: Any) -> Any:
    choices: dict[int, int] = ctx_g.get("smart_choices") or {}
    if not choices and not VISIT_KINDS & blocks.kinds_in_use():
        return response  # no rule reads the visit: nothing to remember, headers as they were
    now = context.visit_now()
    shown = tuple(choices.items())
    if shown in now.cookies:
        value = now.cookies[shown]
    else:  # the cookie after this view: the visit's state with the variants shown
        state = dict(now.state)
        for block_id, index in shown:
            visit.saw(state, block_id, index)
        value = visit.encode(state) if state != now.old else None
        context.remember(now.cookies, shown, value, context.PER_VISIT)
    for block_id, index in shown:
        counters.add("v", block_id, index)
    changed = value is not None
    if changed:
        response.headers.add("Set-Cookie", _cookie(value, req))
    if changed or choices:  # a CDN must never hand one cookie, or one visitor's variant, around
        response.headers["Cache-Control"] = PRIVATE
    if choices:
        response.vary.add("Cookie")
    return response


def _form_response(response: Any) -> Any:
    ok = response.status_code == 303 or (
        response.status_code == 200 and response.is_json and
        bool((response.get_json(silent=True) or {}).get("ok")))
    if not ok:
        return response
    for block_id, index in visit.seen_in_visit(visit.read(request.cookies.get(visit.COOKIE))):
        counters.add("c", block_id, index)
    vid = visitors.visitor_id(request)
    if vid:
        profiles.forget(vid)  # they may be trusted now: read their profile afresh
    return response


def after_request(response: Any) -> Any:
    """Every response (registered app-wide by the plugin's blueprint); acts only while the
    plugin is enabled and at least one block exists."""
    req, ctx_g = request._get_current_object(), g._get_current_object()
    endpoint = req.endpoint or ""
    if not (endpoint.startswith("content.") or endpoint == "forms.submit"):
        return response
    if not plugins.current().is_enabled(SLUG) or ctx_g.get("smart_view_as") is not None:
        return response
    try:
        if not blocks.all_blocks():
            return response
        if endpoint == "forms.submit":
            return _form_response(response)
        if req.method in ("GET", "HEAD") and response.status_code in (200, 304):
            return _page_response(response, req, ctx_g)
    except Exception:  # counting or a cookie must never cost the visitor the page
        current_app.logger.exception("smart content: response hook failed")
    return response
