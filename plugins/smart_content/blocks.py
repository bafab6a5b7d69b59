"""The blocks as the hot path reads them: every block in this process's memory, per generation.

Saving a block moves the site's generation (`engine.content.cache.invalidate`), so every process
reloads them (one query) and every cached page is rendered again. Which blocks a page uses is
found from its body (`[smart slug]`) and its front matter (`smart: {hero: slug}`) once per page
and generation, so a cache hit costs no query, and the cache key covers a replaced section as
it covers a shortcode.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from flask import current_app, request
from sqlalchemy import select

from engine.content import sections as landing_sections
from engine.content import service as content
from engine.db import db
from engine.web import generation
from plugins.smart_content.models import SmartBlock
from plugins.smart_content.rules import needs_profile

SHORTCODE = re.compile(r"(?<!\[)\[smart\s+([a-z0-9][a-z0-9_-]{0,59})\s*\]")
PAGES_KEPT = 2000
PAGE_TTL = 60.0  # seconds; a page that became due (scheduled) is re-read within a minute
EXTENSION = "smart_content.blocks"


@dataclass(frozen=True)
class Block:
    id: int
    slug: str
    name: str
    default: str
    variants: tuple[dict[str, Any], ...]
    needs_profile: bool
    kinds: frozenset[str]
    stamp: str  # changes with every save: part of the rendered HTML's cache key


class _Kept:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.generation = -1
        self.blocks: dict[str, Block] = {}
        self.pages: dict[tuple[str, str], tuple[float, tuple[str, ...]]] = {}
        self.kinds: frozenset[str] = frozenset()


def _kept() -> _Kept:
    kept = current_app.extensions.get(EXTENSION)
    if kept is None:
        kept = current_app.extensions.setdefault(EXTENSION, _Kept())
    return kept


def compile_block(row: SmartBlock) -> Block:
    variants = tuple(v for v in (row.variants or []) if isinstance(v, dict))
    kinds = frozenset(str(c.get("kind")) for v in variants
                      for c in (v.get("rules") or {}).get("conditions") or [])
    return Block(row.id, row.slug, row.name, row.default or "", variants,
                 needs_profile(list(variants)), kinds,
                 f"{row.id}.{row.updated_at.timestamp() if row.updated_at else 0}")


def all_blocks() -> dict[str, Block]:
    """`{slug: Block}`, reloaded when the generation moves."""
    kept = _kept()
    gen = generation.current()
    if kept.generation != gen:
        loaded = {r.slug: compile_block(r) for r in db.session.scalars(select(SmartBlock))}
        kinds = frozenset().union(*(b.kinds for b in loaded.values()))
        with kept.lock:
            kept.blocks, kept.pages, kept.kinds, kept.generation = loaded, {}, kinds, gen
    return kept.blocks


def kinds_in_use() -> frozenset[str]:
    """Every kind of condition some block's rules use (what the visit cookie must keep)."""
    all_blocks()
    return _kept().kinds


def slugs_in(text: str) -> tuple[str, ...]:
    """The blocks a body places (`[smart slug]`), each once, in order."""
    return tuple(dict.fromkeys(SHORTCODE.findall(text or "")))


def sections_of(item: Any) -> dict[str, str]:
    """`{section: slug}` from the page's front matter (`smart: {hero: pricing-hero}`): the
    theme's sections whose content a block replaces. Anything malformed is left out (the
    section then shows the theme's own content)."""
    named = (getattr(item, "fields", None) or {}).get("smart")
    if not isinstance(named, dict):
        return {}
    return {str(k): v.strip() for k, v in named.items() if isinstance(v, str) and v.strip()}


def slugs_of(item: Any) -> tuple[str, ...]:
    """Every block the page uses: placed in its body or a landing section's text, and named
    for its theme sections, each once."""
    return tuple(dict.fromkeys((*slugs_in(landing_sections.markdown_of(item)),
                                *sections_of(item).values())))


def _item_of_request() -> Any:
    endpoint, args = request.endpoint or "", request.view_args or {}
    if endpoint == "content.home":
        return content.visible_item("page", "home")
    if endpoint == "content.page" and args.get("slug") != "home":
        return content.visible_item("page", str(args.get("slug", "")))
    if endpoint == "content.post":
        return content.visible_item("post", str(args.get("slug", "")))
    return None


def on_this_page() -> list[Block]:
    """The blocks the requested page uses (none for listings and other pages)."""
    blocks = all_blocks()
    req = request._get_current_object()
    endpoint = req.endpoint or ""
    if not blocks or not endpoint.startswith("content."):
        return []
    kept = _kept()
    key = (endpoint, req.path)
    now = time.monotonic()
    hit = kept.pages.get(key)
    if hit is None or now - hit[0] > PAGE_TTL:
        item = _item_of_request()
        slugs = slugs_of(item) if item is not None else ()
        with kept.lock:
            if len(kept.pages) >= PAGES_KEPT:
                kept.pages.clear()
            if item is not None:  # a 404 path is not kept (random paths must not fill it)
                kept.pages[key] = (now, slugs)
    else:
        slugs = hit[1]
    return [blocks[s] for s in slugs if s in blocks]
