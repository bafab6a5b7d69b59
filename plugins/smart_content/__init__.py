"""Smart content: blocks that show each visitor the variant that fits them, chosen on the server.

An editor defines a block (a default and ordered variants with rules, `rules`) and places it in
Markdown with `[smart slug]`, or hands it a theme's section in front matter
(`smart: {hero: slug}`). The variant is chosen from the request, the plugin's visit cookie
(`visit`) and, for a trusted browser, the contact's profile in Redis (`profiles`), never with
JavaScript; the page cache keeps one copy per combination of matched variants (`placing`).
Views and conversions are counted in memory and Redis, stored by a job (`counters`, `jobs`).
The admin (`admin`) edits blocks, previews a page as anyone ("View as") and reports.
"""
from __future__ import annotations

from typing import Any

from engine.admin.menu import MenuItem
from engine.plugins import hookimpl
from plugins.smart_content import admin, blocks, counters, jobs, placing, profiles, site

__version__ = "1.0.0"
TITLE = "Smart content"
DEFAULT_ENABLED = True

# Events after which a known visitor's profile may differ (lists, segments, fields, identity).
PROFILE_EVENTS = frozenset({
    "segment_entered", "segment_left", "list_joined", "list_left", "subscription_confirmed",
    "field_changed", "stage_changed", "visitor_identified", "contact_created", "contact_merged",
    "merge_undone", "form_submitted"})


@hookimpl
def register_blueprints() -> list[Any]:
    return [admin.blueprint, site.blueprint]


@hookimpl
def register_admin_menu() -> list[Any]:
    return [MenuItem("Smart content", "smart_content_admin.index", "viewer")]


@hookimpl
def register_shortcodes() -> dict[str, Any]:
    return {"smart": placing.shortcode}


@hookimpl
def filter_page_variant(variant: str, request: Any) -> str:
    return placing.page_variant(variant, request)


@hookimpl
def filter_section(html: str, name: str, item: Any, request: Any) -> str:
    return placing.section(html, name, item, request)


@hookimpl
def register_jobs() -> list[Any]:
    return jobs.JOBS


@hookimpl
def on_event(events: list[dict[str, Any]]) -> None:
    """Rewrite the Redis profiles of contacts whose profile may have changed (only while some
    block has rules on known contacts: otherwise nobody reads them)."""
    if not any(b.needs_profile for b in blocks.all_blocks().values()):
        return
    contact_ids = {e.get("contact_id") for e in events if e.get("type") in PROFILE_EVENTS}
    profiles.refresh({c for c in contact_ids if isinstance(c, int)})


@hookimpl
def on_contact_erased(contact_ids: list[int], visitor_ids: list[str]) -> None:
    profiles.drop(visitor_ids)


@hookimpl
def on_shutdown() -> None:
    counters.flush()
    profiles.close()
