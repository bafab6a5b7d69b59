"""Lead scoring: fit and engagement scores with decay, lifecycle stages and the hand-off to sales.

Scores follow the event stream (`on_event`), one event at a time, never by a timed rescan; a
rule edit recalculates the contacts it touches with set statements. Every score is explained:
which rule gave how many points, when, and what is left of them after decay.
"""
from __future__ import annotations

from typing import Any

from engine.admin.menu import MenuItem
from engine.events import EventType, PropertyType
from engine.plugins import hookimpl
from plugins.scoring import (
    admin,
    apply,
    commands,
    conditions,
    handoff,
    inactivity,
    personal_data,
    recalc,
    sorts,
)
from plugins.scoring.settings import ScoringSettings

__version__ = "1.0.0"
TITLE = "Lead scoring"
DEFAULT_ENABLED = True


@hookimpl
def register_blueprints() -> list[Any]:
    return [admin.blueprint]


@hookimpl
def register_commands() -> list[Any]:
    return [commands.scoring_group]


@hookimpl
def register_settings() -> Any:
    return ScoringSettings


@hookimpl
def register_admin_menu() -> list[Any]:
    return [MenuItem("Scoring", "scoring_admin.rules", "viewer")]


@hookimpl
def register_jobs() -> list[Any]:
    return [recalc.recalculate, recalc.forget_rule, recalc.recalculate_half_life,
            recalc.rebase, recalc.thresholds_changed, inactivity.tick, handoff.post_webhook]


@hookimpl
def register_event_types() -> list[Any]:
    number, text = PropertyType.NUMBER, PropertyType.STRING
    return [EventType("score_changed", "Score changed",
                      {"fit": number, "engagement": number, "combined": number,
                       "change": number, "rules": text})]


@hookimpl
def register_segment_conditions() -> list[Any]:
    return conditions.kinds()


@hookimpl
def register_dashboard_cards() -> list[Any]:
    return [admin.dashboard_card]


@hookimpl
def register_contact_list_columns() -> list[Any]:
    return admin.list_columns()


@hookimpl
def register_contact_list_filters() -> list[Any]:
    return admin.list_filters()


@hookimpl
def register_contact_list_sorts() -> list[Any]:
    return sorts.SORTS


@hookimpl
def register_personal_data() -> list[Any]:
    return [personal_data.scores]


@hookimpl
def tpl_admin_contact(contact: Any) -> str:
    return admin.contact_panel(contact)


@hookimpl
def on_event(events: list[dict[str, Any]]) -> None:
    apply.apply_events(events)


@hookimpl
def on_plugin_settings_changed(slug: str, changes: dict[str, Any]) -> None:
    if slug != "scoring":
        return
    if "half_life_days" in changes:
        recalc.queue_half_life(changes["half_life_days"][1])
    if recalc.THRESHOLDS & set(changes):
        recalc.queue_thresholds()
