"""Hostile input on the tracking beacon and pixel: a clear 4xx (never a 500), and odd text
cleaned on the way in, never blocking the queue for the events after it."""
from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from engine.db import db
from engine.events.models import Activity

SCRIPT = "<script>alert(1)</script>"
RTL = "Jane\u202egnp.exe"
EMOJI = "Jane \U0001F680\U0001F469\u200d\U0001F4BB"


def not_a_crash(response: Any) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)[:2000]


def refused(response: Any) -> None:
    assert 400 <= response.status_code < 500, (response.status_code,
                                              response.get_data(as_text=True)[:2000])


def _page_token(app: Flask, path: str = "/") -> str:
    """The token the script carries on the page at `path` (tokens are per page)."""
    from plugins.tracking.beacon import page_token
    with app.test_request_context("/"):
        return page_token(path)


CHROME = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/124.0.0.0 Safari/537.36")


def beacon(client: Any, body: Any, **headers: str) -> Any:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/t/event", data=data, content_type="text/plain",
                       headers={"User-Agent": CHROME, **headers})


@pytest.mark.both_backends
def test_the_beacon_refuses_hostile_bodies(app):
    client = app.test_client()
    k = _page_token(app)
    cases = [
        "x" * 5000, b"\xff\xfe\x00", "not json", "[]", "null", "1e999", "[" * 3000,
        {"t": "page_view", "u": "http://localhost/"},  # no page token
        {"k": "forged", "t": "page_view", "u": "http://localhost/"},
        {"k": ["list"], "t": "page_view", "u": "http://localhost/"},
        {"k": k, "t": "nope", "u": "http://localhost/"},
        {"k": k, "t": "page_view"},
        {"k": k, "t": "page_view", "u": ["http://localhost/"]},
        {"k": k, "t": "page_view", "u": {"a": 1}},
        {"k": k, "t": "page_view", "u": "javascript:alert(1)"},
        {"k": k, "t": "page_view", "u": "http://evil.example/"},
        {"k": k, "t": "page_view", "u": "http://localhost/" + "a" * 3000},
        {"k": k, "t": "page_view", "u": "http://localhost:99999/"},
        {"k": k, "t": "click", "u": "http://localhost/", "h": "data:text/html,x"},
        {"k": k, "t": "page_view", "u": "http://localhost/", "n": {"nested": True}},
        {"k": k, "t": "form_view", "u": "http://localhost/"},
    ]
    for body in cases:
        response = beacon(client, body)
        refused(response)
        assert response.is_json
    too_big = "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    assert beacon(client, too_big).status_code == 413


@pytest.mark.both_backends
def test_odd_text_in_events_is_cleaned_and_never_blocks_the_queue(app):
    """A lone surrogate or NUL in a title must not poison the buffer for everyone after it."""
    from plugins.tracking import buffer, handover
    client = app.test_client()
    k = _page_token
    odd = ['{"k": "%s", "t": "page_view", "u": "http://localhost/a", "n": "\\ud800 \\u0000 x"}'  # noqa: UP031
           % k(app, "/a"),
           {"k": k(app, "/b\ud800"), "t": "page_view", "u": "http://localhost/b\ud800", "n": RTL},
           {"k": k(app), "t": "click", "u": "http://localhost/", "h": "http://localhost/\U0001F680",
            "x": SCRIPT + "\ud83d"},
           {"k": k(app, "/c"), "t": "page_view", "u": "http://localhost/c", "n": EMOJI,
            "l": "\ud800"}]
    for body in odd:
        not_a_crash(beacon(client, body))
    assert beacon(client, {"k": k(app, "/after"), "t": "page_view", "u": "http://localhost/after",
                           "n": "After"}).status_code == 204
    with app.app_context():
        handover.pending_here().flush()
        buffer.drain()
        assert buffer.pending() == 0
        urls = list(db.session.scalars(select(Activity.url)))
    assert "http://localhost/after" in urls


@pytest.mark.both_backends
def test_the_pixel_refuses_hostile_input(app):
    client = app.test_client()
    k = _page_token(app)
    assert client.get("/t/pixel.gif").status_code == 403
    assert client.get("/t/pixel.gif?k=forged").status_code == 403
    assert client.get("/t/pixel.gif?k=" + "x" * 5000).status_code == 403
    for page in ("javascript:alert(1)", "http://evil.example/", "//evil.example", "\r\nX: y"):
        response = client.get("/t/pixel.gif", query_string={"k": k, "u": page},
                              headers={"User-Agent": CHROME})
        refused(response)
