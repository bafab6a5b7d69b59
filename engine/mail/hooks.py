"""Mail as a built-in plugin: its jobs, the personal data it keeps, what it does on events.

Each part lives in its own module (the single-message log in `messages`, a recipient's
preferences in `preferences`, ...); this module only lists them for the plugin manager.
"""
from __future__ import annotations

from typing import Any

from engine.mail import messages, personal_data, preferences, sending
from engine.mail.bounces import personal as bounces_personal
from engine.plugins import hookimpl


@hookimpl
def register_jobs() -> list[Any]:
    return [messages.send_messages, sending.send_batch]


@hookimpl
def register_personal_data() -> list[Any]:
    return [messages.PERSONAL_DATA, bounces_personal.PERSONAL_DATA, personal_data.PERSONAL_DATA]


@hookimpl
def on_event(events: list[dict[str, Any]]) -> None:
    preferences.lift_on_opt_in(events)
