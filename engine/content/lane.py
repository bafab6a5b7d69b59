"""The hit lane: a cached page answered ahead of Flask's routing and dispatch.

A page-cache hit through Flask pays, besides its own work, for matching its URL again, binding
a URL adapter it will not use, and the dispatch around `serve_hit` (the `before_request` loop,
signals, response conversion): about an eighth of what a hit costs, spent to learn again what
the last request to the same path learned. The lane, WSGI middleware just in front of the
Flask app, answers a request itself when all of these hold, and otherwise hands it to Flask
untouched:
- a GET or HEAD;
- no cookie whose name contains the session's, the remember-me cookie's or the theme
  preview's name, and no `preview_theme` in the query string: such requests go through Flask,
  which checks the signatures and bypasses the cache (a forged cookie costs the visitor only
  the lane, never the cache);
- Flask served this method and path from the page cache before (`PageCache.learn`), so the
  path's route and arguments are known: they are taken from there instead of matched again;
- the page is in the cache, as `serve_hit` (Flask's first `before_request`) decides in the
  lane too: the same key (generation, plugin state, variant, host, path) and the same bypass
  rules. When it is not (a miss, a bypass, an error), the request goes to Flask, which decides
  again: a miss costs its key twice.

A hit then runs what Flask runs after `serve_hit` returns, in the same order: the
`request_started` signal, `finalize_request` (every `after_request` function, the app's and
plugins' alike: security headers, smart content's cookie and counts, the session, then
`request_finished`), the WSGI response (HEAD, 304 and `Content-Length` as always), and the
teardowns. It runs inside Flask's own request context (`request`, `g`, `session` and
`url_for` all work), made with the known route and a URL adapter bound on first use; so every
header and cookie is the one Flask would send, which `tests/test_page_cache_lane.py` checks by
sending the same requests with the lane on and off. `PAGE_CACHE_LANE = False` turns it off.
"""
from __future__ import annotations

import sys
from typing import Any

from flask import Flask, request_started
from flask.ctx import RequestContext
from flask.globals import _cv_app, _cv_request
from werkzeug.routing import MapAdapter, Rule

from engine.content.cache import PageCache, serve_hit
from engine.themes import preview

METHODS = ("GET", "HEAD")
PREVIEW_ARGUMENT = "preview_theme"


class HitLane:
    """`app.wsgi_app`, wrapping Flask's own; `answered` counts the requests it answered."""

    def __init__(self, app: Flask, flask_wsgi: Any) -> None:
        self.app, self.flask_wsgi = app, flask_wsgi
        self.store: PageCache = app.extensions["magnet.page_cache"]
        self.answered = 0

    def _bypass_names(self) -> tuple[str, ...]:
        config = self.app.config
        return (str(config.get("SESSION_COOKIE_NAME") or "session"),
                str(config.get("REMEMBER_COOKIE_NAME") or "remember_token"), preview.COOKIE)

    def _route(self, environ: dict[str, Any]) -> tuple[Rule, dict[str, Any]] | None:
        """The known route of a request the lane may answer, else None."""
        method, config = environ.get("REQUEST_METHOD", ""), self.app.config
        if method not in METHODS or not config.get("PAGE_CACHE_LANE", True) \
                or config.get("TRUSTED_HOSTS") is not None:  # Flask's URL adapter checks them
            return None
        route = self.store.routes.get((method, environ.get("PATH_INFO", "")))
        if route is None or PREVIEW_ARGUMENT in environ.get("QUERY_STRING", ""):
            return None
        cookies = environ.get("HTTP_COOKIE", "")
        if cookies and any(name in cookies for name in self._bypass_names()):
            return None
        return route

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        route = self._route(environ)
        if route is None:
            return self.flask_wsgi(environ, start_response)
        app = self.app
        ctx = KnownRouteContext(app, environ, route)
        try:
            ctx.push()
            preview.none_asked()  # `_route` found neither its argument nor its cookie
            response = serve_hit()
        except Exception:  # Flask decides again, and answers the error its own way
            response = None
        if response is None:
            ctx.pop()
            return self.flask_wsgi(environ, start_response)
        self.answered += 1
        error: BaseException | None = None
        try:  # from here, as `Flask.wsgi_app` and `full_dispatch_request` after `serve_hit`
            try:
                request_started.send(app, _async_wrapper=app.ensure_sync)
                response = app.finalize_request(response)
            except Exception as exc:
                error = exc
                response = app.handle_exception(exc)
            except:  # noqa: E722 (as Flask: recorded for the teardowns, then raised)
                error = sys.exc_info()[1]
                raise
            return response(environ, start_response)
        finally:
            if "werkzeug.debug.preserve_context" in environ:
                environ["werkzeug.debug.preserve_context"](_cv_app.get())
                environ["werkzeug.debug.preserve_context"](_cv_request.get())
            if error is not None and app.should_ignore_error(error):
                error = None
            ctx.pop(error)


class KnownRouteContext(RequestContext):
    """Flask's request context for a request whose route is known (`PageCache.learn`): the
    route is given rather than matched, and the URL adapter is bound when first used (by
    `url_for`), not for every request. `__init__` sets what Flask 3.1's sets; a Flask that
    sets more would fail the lane's tests before it served a page."""

    def __init__(self, app: Flask, environ: dict[str, Any],
                 route: tuple[Rule, dict[str, Any]]) -> None:
        # What `RequestContext.__init__` does, but for the URL adapter.
        self.app = app
        request = app.request_class(environ)
        request.json_module = app.json
        self.request = request
        self.url_adapter = _AdapterOnFirstUse(app, request)  # type: ignore[assignment]
        self.flashes = None
        self._session = None
        self._after_request_functions = []
        self._cv_tokens = []
        self._route = route

    def match_request(self) -> None:
        rule, view_args = self._route
        self.request.url_rule, self.request.view_args = rule, dict(view_args)


class _AdapterOnFirstUse:
    """The request's `MapAdapter`, bound by Flask on the first attribute asked for."""

    def __init__(self, app: Flask, request: Any) -> None:
        self._app, self._request = app, request
        self._adapter: MapAdapter | None = None

    def __getattr__(self, name: str) -> Any:
        if self._adapter is None:
            self._adapter = self._app.create_url_adapter(self._request)
        return getattr(self._adapter, name)


def install(app: Flask) -> None:
    """Put the lane in front of Flask (the edge routes and the proxy fix go around it)."""
    app.config.setdefault("PAGE_CACHE_LANE", True)
    app.wsgi_app = HitLane(app, app.wsgi_app)  # type: ignore[method-assign]
    app.extensions["magnet.hit_lane"] = app.wsgi_app
