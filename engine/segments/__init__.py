"""Segments: saved conditions over contacts, with membership kept current event by event.

The service (`engine.segments.service`) is what other concerns and plugins use: `save`,
`members`, `of_contact`, `by_name`; `engine.segments.describe` says conditions in words;
plugins add kinds of condition with `register_segment_conditions`
(`engine.segments.conditions.ConditionKind`).
"""
from __future__ import annotations

from flask import Blueprint, Flask

# No routes: it only makes `templates/segments/` findable (the admin contact page's panel).
templates = Blueprint("segments", __name__, template_folder="templates")


def init_app(app: Flask) -> None:
    from engine.segments import models  # noqa: F401  (tables known to migrations)
    from engine.segments.cli import segments_group
    app.cli.add_command(segments_group)
    app.register_blueprint(templates)
