"""Engine-wide web endpoints that belong to no single concern (health checks)."""
from __future__ import annotations

from flask import Flask

from engine.web.health import health


def init_app(app: Flask) -> None:
    app.register_blueprint(health)
