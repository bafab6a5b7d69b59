"""Mail: messages queued through the outbox and sent by a worker (SMTP, or a folder in dev).

`send()` is called inside the caller's `write()`: the message is stored in the mail log and an
outbox row is written in the same transaction, so an email exists exactly when the thing it
announces does, and a Redis outage or an SMTP failure only delays it.
"""
from __future__ import annotations

from flask import Flask

from engine.mail.service import HeaderInjection, send, send_many, sender

__all__ = ["HeaderInjection", "init_app", "send", "send_many", "sender"]


def init_app(app: Flask) -> None:
    from engine.mail import models  # noqa: F401  (tables known to migrations)
    from engine.mail.bounces import DEFAULTS as BOUNCE_DEFAULTS
    for key, value in BOUNCE_DEFAULTS.items():
        app.config.setdefault(key, value)
    from engine.mail.cli import mail_group
    from engine.mail.suppression_csv import UPLOAD_BYTES, UPLOAD_CONFIG
    from engine.mail.views import blueprint
    app.config.setdefault(UPLOAD_CONFIG, UPLOAD_BYTES)  # the admin's suppression list import
    app.register_blueprint(blueprint)
    app.cli.add_command(mail_group)
