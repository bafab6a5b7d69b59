"""The same requests through the page cache's lane and through Flask, compared.

`through_both(app, requests)` primes the cache with one pass (Flask renders the pages and
learns their routes), sends the requests once with the lane off (Flask answers every one, as
before the lane existed) and once with it on, and returns both passes' responses, each as what
a browser or a cache in front would see, and which requests the lane answered.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import Flask

TOKEN = re.compile(r'(name="_token" value=")[^"]+(")')
EXPIRES = re.compile(r"Expires=[^;]+; ")
PAGE_KEY = re.compile(r'(data-k="|pixel\.gif\?k=)[^"&]+')  # tracking: signed per second


@dataclass(frozen=True)
class Request:
    path: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Seen:
    """A response as seen: status, every header but `Date` in order (a cookie's `Expires`, a
    second-dated copy of its `Max-Age`, left out), and the body with form tokens blanked (and,
    in a page rendered for this response rather than served from the cache, the tracking
    script's key, signed to the second)."""
    status: int
    headers: tuple[tuple[str, str], ...]
    body: str
    tokens: tuple[str, ...]


def seen(response: Any) -> Seen:
    body = response.get_data(as_text=True)
    headers = tuple((name, EXPIRES.sub("", value) if name == "Set-Cookie" else value)
                    for name, value in response.headers.items() if name != "Date")
    shown = TOKEN.sub(r"\1…\2", body)
    if response.headers.get("X-Magnet-Cache") != "hit":
        shown = PAGE_KEY.sub(r"\1…", shown)
    return Seen(response.status_code, headers, shown,
                tuple(m.group(0) for m in TOKEN.finditer(body)))


def lane_of(app: Flask) -> Any:
    return app.extensions["magnet.hit_lane"]


def one_pass(app: Flask, requests: list[Request], lane: bool) -> tuple[list[Seen], list[bool]]:
    app.config["PAGE_CACHE_LANE"] = lane
    client = app.test_client(use_cookies=False)
    responses, answered = [], []
    for request in requests:
        before = lane_of(app).answered
        response = client.open(request.path, method=request.method,
                               headers=list(request.headers))
        responses.append(seen(response))
        answered.append(lane_of(app).answered > before)
    app.config["PAGE_CACHE_LANE"] = True
    return responses, answered


def through_both(app: Flask, requests: list[Request]) -> tuple[list[Seen], list[Seen], list[bool]]:
    """(Flask's responses, the lane's responses, which ones the lane answered)."""
    one_pass(app, requests, lane=False)
    by_flask, flask_answered = one_pass(app, requests, lane=False)
    assert not any(flask_answered)
    by_lane, answered = one_pass(app, requests, lane=True)
    return by_flask, by_lane, answered


def assert_same(by_flask: list[Seen], by_lane: list[Seen], requests: list[Request]) -> None:
    for request, flask_seen, lane_seen in zip(requests, by_flask, by_lane, strict=True):
        assert lane_seen.status == flask_seen.status, request
        assert lane_seen.headers == flask_seen.headers, request
        assert lane_seen.body == flask_seen.body, request
