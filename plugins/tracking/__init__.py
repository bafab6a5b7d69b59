"""Records page views, clicks, downloads and form views, and joins them to contacts."""
from __future__ import annotations

from typing import Any

from engine.admin.menu import MenuItem
from engine.contacts import identity, timezones
from engine.db import write
from engine.events import EventType, PropertyType
from engine.plugins import hookimpl
from engine.web.edge import EdgeRoute
from plugins.tracking import admin, beacon, commands, handover, jobs, visits
from plugins.tracking.settings import TrackingSettings
from plugins.tracking.visits import described

__version__ = "1.0.0"
TITLE = "Behaviour tracking"
DEFAULT_ENABLED = True


@hookimpl
def register_blueprints() -> list[Any]:
    return [beacon.blueprint, admin.blueprint]


@hookimpl
def register_edge_routes() -> list[Any]:
    return [EdgeRoute("POST", beacon.EVENT_PATH, beacon.event)]


@hookimpl
def register_commands() -> list[Any]:
    return [commands.tracking_group]


_SEEN = {"path": PropertyType.STRING, "title": PropertyType.STRING,
         "referrer": PropertyType.STRING, "language": PropertyType.STRING,
         "device": PropertyType.STRING, "browser": PropertyType.STRING, "os": PropertyType.STRING}


@hookimpl
def register_event_types() -> list[Any]:
    return [EventType("page_view", "Viewed a page", _SEEN, sentence="Viewed {title|path|url}",
                      links_page=True),
            EventType("click", "Clicked a link", {**_SEEN, "href": PropertyType.STRING,
                                                  "label": PropertyType.STRING},
                      sentence="Clicked “{label|href}” on {title|path}"),
            EventType("download", "Downloaded a file", {**_SEEN, "href": PropertyType.STRING},
                      sentence="Downloaded {label|href:file}"),
            EventType("form_view", "Saw a form", {**_SEEN, "form": PropertyType.STRING},
                      sentence="Saw the {form:file} form on {title|path}")]


@hookimpl
def filter_timeline_visits(visits: dict[str, dict[str, Any]], contact_id: int
                           ) -> dict[str, dict[str, Any]]:
    """Where each visit on a contact's timeline came from, and how many pages it saw."""
    return {**visits, **described(list(visits))}


@hookimpl
def register_jobs() -> list[Any]:
    return [jobs.drain_events, jobs.prune_anonymous]


@hookimpl
def register_settings() -> Any:
    return TrackingSettings


@hookimpl
def register_admin_menu() -> list[Any]:
    return [MenuItem("Traffic", "tracking_admin.traffic", "viewer")]


@hookimpl
def register_dashboard_cards() -> list[Any]:
    return [admin.dashboard_card]


@hookimpl
def tpl_body_end(request: Any) -> str:
    return beacon.tags(request)


@hookimpl
def on_shutdown() -> None:
    """Page views and clicks still waiting in this process reach Redis before it stops."""
    handover.pending_here().flush()


@hookimpl
def on_contact_erased(contact_ids: list[int], visitor_ids: list[str]) -> None:
    """Their touches (landing pages, referrers, campaigns) and their browsers' visits go; the
    daily roll-ups, which name nobody, stay."""
    visits.forget(contact_ids, visitor_ids)


@hookimpl
def on_form_submitted(submission: Any, contact: Any) -> None:
    """A visitor just identified: their first and last touch come from their visits so far, and
    their browser's time zone from the latest (later page views in that zone change nothing).
    Read first, outside any write: most new contacts' browsers have no visit yet to record."""
    if contact is None:
        return
    found = visits.first_and_last(identity.visitors_of(contact.id))
    if found is not None:
        first, last = visits.as_touch(found[0]), visits.as_touch(found[1])
        zone = found[1].time_zone
        with write():
            visits.save_touches(contact.id, first, last)
            if zone:
                timezones.remember_browser_zones({contact.id: zone})
