"""Edge routes: the few endpoints that must answer faster than a Flask view can.

Before a Flask view runs, a request has paid for its request context, the session, routing and a
dozen `before_request` checks, and after it the `after_request` headers: about half a
millisecond, which is most of the cost of a tracking beacon sent on every page view and click.
An edge route is a plain function `handler(environ) -> (status, headers, body)` called straight
from WSGI inside an app context only. It reads the WSGI environ itself (even werkzeug's request
and response objects cost more than a beacon's own work) and has no session, no CSRF check, no
`before_request`: it suits public endpoints that check their own input and need no login.
Everything else belongs in a blueprint. (Cached pages have a lane of their own, which keeps
Flask's request context and `after_request` functions: `engine.content.lane`.)

Plugins give edge routes with the `register_edge_routes` hook. A disabled plugin's route passes
the request on to Flask, which answers 404 as for any unknown address. An exception in a
handler is reported as a plugin error and answered with a JSON 500.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from flask import Flask

from engine.plugins import PluginError, Plugins

Headers = list[tuple[str, str]]
Answer = tuple[int, Headers, bytes]
STATUS_LINES = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}


@dataclass(frozen=True)
class EdgeRoute:
    """`method` and exact `path` (no variables) answered by `handler(environ) -> Answer`, an
    `(HTTP status, [(header, value)], body)` tuple."""

    method: str
    path: str
    handler: Callable[[dict[str, Any]], Answer]


def json_answer(status: int, data: Any, headers: Headers | None = None) -> Answer:
    """A JSON answer that no cache keeps and no browser reads as anything else."""
    return (status, [("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                     ("X-Content-Type-Options", "nosniff"), *(headers or [])],
            json.dumps(data).encode())


def read_body(environ: dict[str, Any], limit: int) -> bytes | None:
    """At most `limit` bytes of the request body; None when it is longer (a declared length
    or a chunked body alike: what is read is what counts)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        return None
    if length > limit:
        return None
    if length < 0 and not environ.get("wsgi.input_terminated"):
        return b""  # neither a length nor a server that ends the stream: no body to read
    body = environ["wsgi.input"].read(limit + 1 if length < 0 else length)
    return None if len(body) > limit else body


class EdgeDispatcher:
    """WSGI middleware put in front of the Flask app by the factory."""

    def __init__(self, app: Flask, plugins: Plugins, routes: Iterable[tuple[str, EdgeRoute]]):
        self.app, self.plugins, self.flask_wsgi = app, plugins, app.wsgi_app
        self.routes: dict[tuple[str, str], tuple[str, EdgeRoute]] = {}
        self.add(routes)

    def add(self, routes: Iterable[tuple[str, EdgeRoute]]) -> None:
        """Add `(slug, route)`s; all or none: an address taken twice refuses them."""
        added = dict(self.routes)
        for slug, route in routes:
            key = (route.method.upper(), route.path)
            if key in added:
                raise PluginError(f"register_edge_routes: {route.method} {route.path} is "
                                  f"registered by both {added[key][0]!r} and {slug!r}")
            added[key] = (slug, route)
        self.routes = added  # one assignment: a request sees the old table or the new one

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        found = self.routes.get((environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")))
        if found is None:
            return self.flask_wsgi(environ, start_response)
        slug, route = found
        with self.app.app_context():
            self.plugins.refresh()
            answer = self._answer(slug, route, environ) if self.plugins.is_enabled(slug) else None
        if answer is None:  # the plugin is off: Flask answers (404 for an unknown address)
            return self.flask_wsgi(environ, start_response)
        status, headers, body = answer
        start_response(STATUS_LINES.get(status) or f"{status} Unknown",
                       [*headers, ("Content-Length", str(len(body)))])
        return [body]

    def _answer(self, slug: str, route: EdgeRoute, environ: dict[str, Any]) -> Answer:
        try:
            return route.handler(environ)
        except Exception as exc:  # the engine's boundary, as for any hook
            self.plugins.report_error(slug, f"edge {route.method} {route.path}", exc)
            return json_answer(500, {"error": "internal error"})


def install(app: Flask, plugins: Plugins) -> None:
    """Put the edge routes every plugin registers (enabled or not) in front of the app."""
    add_routes(app, plugins, plugins.collect("register_edge_routes", include_disabled=True))


def add_routes(app: Flask, plugins: Plugins, routes: list[tuple[str, EdgeRoute]]) -> None:
    """Edge routes at start-up, or of a plugin created while the site runs."""
    if not routes:
        return
    if isinstance(app.wsgi_app, EdgeDispatcher):
        app.wsgi_app.add(routes)
    else:
        app.wsgi_app = EdgeDispatcher(app, plugins, routes)  # type: ignore[method-assign]
