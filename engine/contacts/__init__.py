"""Contacts: people, companies, tags, lists, consent and the activity timeline (the 360-degree
view)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from engine.contacts import models  # noqa: F401  (tables known to migrations)
    from engine.contacts.cli import contacts_group
    from engine.contacts.lists import UPLOAD_BYTES, UPLOAD_CONFIG
    app.config.setdefault(UPLOAD_CONFIG, UPLOAD_BYTES + 64 * 1024)  # the file and the form
    app.cli.add_command(contacts_group)
