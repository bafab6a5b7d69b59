"""Records page views, clicks, downloads and form views, and joins them to contacts."""
from __future__ import annotations

from typing import Any

from engine.admin.menu import MenuItem
from engine.contacts import identity
from engine.db import write
from engine.plugins import hookimpl
from plugins.tracking import admin, beacon, commands, jobs, visits
from plugins.tracking.settings import TrackingSettings

__version__ = "1.0.0"
TITLE = "Behaviour tracking"
DEFAULT_ENABLED = True


@hookimpl
def register_blueprints() -> list[Any]:
    return [beacon.blueprint, admin.blueprint]


@hookimpl
def register_commands() -> list[Any]:
    return [commands.tracking_group]


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
def on_form_submitted(submission: Any, contact: Any) -> None:
    """A visitor just identified: their first and last touch come from their visits so far."""
    if contact is None:
        return
    with write():
        visits.update_touches(contact.id, identity.visitors_of(contact.id))
