"""Workflows: drip sequences and if/then nurture paths that react to what each contact does.

Triggers are events as they are delivered (`triggers`), never a timed rescan; each enrolment
runs step after step (`runner`, `steps`), waiting in the contact's own time zone (`timing`),
exactly once per (enrolment, step) whatever the number of workers. Marketers build workflows in
the admin (`admin`), start from a template (`library`), test them on a contact (`testing`), and
see who is where.
"""
from __future__ import annotations

from typing import Any

from engine.admin.menu import MenuItem
from engine.events import EventType, PropertyType
from engine.plugins import hookimpl
from plugins.workflows import admin, commands, jobs, personal_data, triggers

__version__ = "1.0.0"
TITLE = "Workflows"
DEFAULT_ENABLED = True


@hookimpl
def register_blueprints() -> list[Any]:
    return [admin.blueprint]


@hookimpl
def register_commands() -> list[Any]:
    return [commands.workflows_group]


@hookimpl
def register_admin_menu() -> list[Any]:
    return [MenuItem("Workflows", "workflows_admin.index", "viewer")]


@hookimpl
def register_jobs() -> list[Any]:
    return jobs.JOBS


@hookimpl
def register_event_types() -> list[Any]:
    text, number = PropertyType.STRING, PropertyType.NUMBER
    about = {"workflow": text, "workflow_id": number}
    return [EventType("workflow_entered", "Entered a workflow", {**about, "reason": text}),
            EventType("workflow_finished", "Left a workflow",
                      {**about, "status": text, "reason": text}),
            EventType("workflow_goal_reached", "Reached a workflow's goal",
                      {**about, "goal": text}),
            EventType("score_adjusted", "Had the score adjusted",
                      {"points": number, "reason": text})]


@hookimpl
def register_personal_data() -> list[Any]:
    return [personal_data.enrolments]


@hookimpl
def tpl_admin_contact(contact: Any) -> str:
    return admin.contact_panel(contact)


@hookimpl
def on_event(events: list[dict[str, Any]]) -> None:
    triggers.handle(events)
