"""Contacts: people, companies, tags, consent and the activity timeline (the 360-degree view)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from engine.contacts import models  # noqa: F401  (tables known to migrations)
    from engine.contacts.cli import contacts_group
    app.cli.add_command(contacts_group)
