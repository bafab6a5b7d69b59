"""Forms: definitions, rendering, the submission pipeline, gated assets and double opt-in."""
from __future__ import annotations

from flask import Flask

DEFAULTS = {
    "FORM_TOKEN_MAX_AGE": 2 * 86400,  # from when a visitor got the page (made per response)
    "FORM_MIN_FILL_SECONDS": 2.0,  # faster than this is a bot
    "FORM_RATE_LIMIT_IP": 30,  # submissions per IP per window, all forms together
    "FORM_RATE_LIMIT_EMAIL": 5,  # submissions of one form by one address per window
    "FORM_RATE_WINDOW": 600,  # seconds
    "FORM_MAX_BYTES": 64 * 1024,  # a whole POST, as read (chunked too), else 413
    "FORM_ASSET_LINK_SECONDS": 7 * 86400,
    "FORM_CONFIRM_LINK_SECONDS": 14 * 86400,
    # At most one double opt-in email per address and list in this long, however often the
    # form is sent again (the link in the first one stays valid meanwhile).
    "FORM_CONFIRMATION_RESEND_SECONDS": 3600,
}


def init_app(app: Flask) -> None:
    from engine.forms import models  # noqa: F401  (tables known to migrations)
    from engine.forms.cli import forms_group
    from engine.forms.security import register_late_values
    from engine.forms.views import blueprint
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    app.register_blueprint(blueprint)
    app.cli.add_command(forms_group)
    register_late_values(app)
