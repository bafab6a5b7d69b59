"""Shared by the tracking tests: sending beacons as a browser would, and draining the buffer."""
from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, render_template

CHROME = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/124.0.0.0 Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")


def page_token(app: Flask, url: str = "http://localhost/") -> str:
    """The token the page at `url` carries in its script tag."""
    from plugins.tracking.beacon import page_token as token
    with app.test_request_context("/"):
        return token(urlsplit(url).path or "/")


def send(client: Any, app: Flask, kind: str = "page_view", url: str = "http://localhost/",
         agent: str = CHROME, headers: dict[str, str] | None = None, **fields: Any) -> Any:
    """POST one event the way the script's sendBeacon does (JSON in a text/plain body), with
    the token of the page at `url`."""
    payload = {"k": page_token(app, url), "t": kind, "u": url, "l": "en-GB", **fields}
    return client.post("/t/event", data=json.dumps(payload), content_type="text/plain",
                       headers={"User-Agent": agent, **(headers or {})})


def drain(app: Flask) -> int:
    """Hand over what this process's beacons accepted, then store what Redis holds."""
    from plugins.tracking import buffer, handover
    with app.app_context():
        handover.pending_here().flush()
        return buffer.drain()


def events(app: Flask) -> list[Any]:
    from sqlalchemy import select

    from engine.db import db
    from engine.events.models import Activity
    with app.app_context():
        rows = list(db.session.scalars(select(Activity).order_by(Activity.occurred_at,
                                                                 Activity.id)))
        db.session.expunge_all()
        return rows


def public_page(app: Flask, path: str = "/") -> str:
    """The end of the public base template as a visitor would get it."""
    with app.test_request_context(path):
        return render_template("base.html")


def configure(app: Flask, **settings: Any) -> None:
    """Change the plugin's settings as the admin page does: its form as shown, with these
    values changed (True ticks a checkbox, False unticks it)."""
    plugins = app.extensions["magnet.plugins"]
    with app.app_context():
        data = plugins.settings_formdata("tracking")
        for name, value in settings.items():
            data.setlist(name, ["y"] if value is True else [] if value is False else [str(value)])
        form, _ = plugins.save_settings("tracking", data)
        assert not form.errors, form.errors


PASSWORD = "correct horse battery"


def signed_in(app: Flask, role: str) -> Any:
    """A test client signed in to the admin as a new person with `role`."""
    from engine.auth.accounts import create_user
    with app.app_context():
        create_user(f"{role}@example.com", role, password=PASSWORD)
    client = app.test_client()
    page = client.get("/auth/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    response = client.post("/auth/login", data={"email": f"{role}@example.com",
                                                "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    return client
