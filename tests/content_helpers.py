"""Helpers shared by the content and theme tests."""
from __future__ import annotations

from typing import Any

from flask import Flask


def load_demo(app: Flask) -> Any:
    """Import the bundled demo site into the app's database, as `magnet serve` does."""
    from engine.content import sync
    with app.app_context():
        return sync.sync(app.config["CONTENT_PATH"])


def post(app: Flask, title: str, body: str = "Some text.", **fields: Any) -> Any:
    from engine.content import service
    fields.setdefault("status", "published")
    with app.app_context():
        return service.create_item("post", title, body=body, **fields)
