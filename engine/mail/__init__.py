"""Mail: every email the site sends, transactional and marketing, and what comes back.

- `send()` / `send_many()` (`service`, `messages`): one message about something that just
  happened (a double opt-in link, an invitation), queued in the caller's `write()` through the
  outbox and sent by a worker.
- Marketing: templates (`rendering`, `layout/`), mailings sent to many through the send ledger,
  exactly once each (`sending`, `ledger`, `compose`, `refusals`, `ratelimit`, `transport`,
  `dkim`), open and click tracking (`tracking`), unsubscribes and preferences (`unsubscribe`,
  `preferences`), the suppression list (`suppression`, `suppression_csv`).
- What comes back: bounces and complaints (`bounces/`), the signed tokens of every link and
  return path (`tokens`).
- The public pages under /email (`views/`), the `magnet mail` commands (`cli`), the transport
  settings saved in the admin (`settings`). docs/mail.md is the guide.
"""
from __future__ import annotations

from flask import Flask

from engine.mail.service import HeaderInjection, send, send_many, sender

__all__ = ["HeaderInjection", "init_app", "send", "send_many", "sender"]


def init_app(app: Flask) -> None:
    from engine.mail import models  # noqa: F401  (tables known to migrations)
    from engine.mail.bounces import DEFAULTS as BOUNCE_DEFAULTS
    from engine.mail.cli import mail_group
    from engine.mail.suppression_csv import UPLOAD_BYTES, UPLOAD_CONFIG
    from engine.mail.views import blueprint
    for key, value in BOUNCE_DEFAULTS.items():
        app.config.setdefault(key, value)
    app.config.setdefault(UPLOAD_CONFIG, UPLOAD_BYTES)  # the admin's suppression list import
    app.register_blueprint(blueprint)
    app.cli.add_command(mail_group)
