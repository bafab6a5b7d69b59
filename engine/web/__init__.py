"""Engine-wide web endpoints and request checks that belong to no single concern."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, abort, current_app, request, send_from_directory
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from engine.db import MAX_ROW_ID
from engine.web.health import health

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
View = TypeVar("View", bound=Callable[..., Any])


def body_limit(config_key: str) -> Callable[[View], View]:
    """Mark a view whose request body may hold at most `app.config[config_key]` bytes, counted
    as they are read (see `apply_body_limit`): a check of `Content-Length` alone is bypassed by
    any client that sends none, with chunked transfer encoding. A larger body raises
    `RequestEntityTooLarge` (413), which the view's blueprint answers."""
    def mark(view: View) -> View:
        view.magnet_body_limit = config_key  # type: ignore[attr-defined]
        return view
    return mark


def apply_body_limit() -> None:
    """A `before_request` ahead of every one that reads the body: read the body of a view
    marked with `body_limit`, at most one byte past its limit.

    Werkzeug applies `max_content_length` to a streamed body (gunicorn and the development
    server both pass chunked bodies on, marked `wsgi.input_terminated`) by *stopping* there,
    without an error: the form would be parsed from a silently truncated body. Reading one
    byte more than the limit tells a body that fits from one that is too long. The body is
    kept (`get_data(cache=True)`), and the form is parsed from it."""
    view = current_app.view_functions.get(request.endpoint or "")
    key = getattr(view, "magnet_body_limit", None)
    if key is None:
        return
    limit = int(current_app.config[key])
    request.max_content_length = limit + 1
    if len(request.get_data(cache=True)) > limit:
        raise RequestEntityTooLarge()


def refuse_nul() -> None:
    """No browser puts a NUL in a URL or a form field, and PostgreSQL can neither store nor
    compare one: refused here with a 400 rather than as a database error deep in a view."""
    values = list(request.args.items(multi=True))
    if request.mimetype in FORM_TYPES:
        values += request.form.items(multi=True)
    if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in values):
        abort(400, "The request contains a NUL character.")


def trust_proxies(app: Flask) -> None:
    """Behind `TRUSTED_PROXIES` reverse proxies (a load balancer, nginx), take the client's
    address and scheme from the `X-Forwarded-For` / `X-Forwarded-Proto` they add; otherwise
    every visitor would share the proxy's address, and its rate limits. Only as many hops as
    configured are believed: a visitor can send the headers too. Outermost, so edge routes
    see the same address as Flask's views."""
    hops = int(app.config.get("TRUSTED_PROXIES") or 0)
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]


def is_row_id(value: Any) -> bool:
    """Whether an id from outside (a signed token's contents, JSON) can name a row: an int
    (not a bool) from 1 to `MAX_ROW_ID`. A signature proves who made a token, not that its
    contents have the shape the code expects, and a database raises on absurd integers."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ROW_ID


class RowIdConverter(IntegerConverter):
    """`<int:...>` in every route: at most `MAX_ROW_ID`, so a larger number is a 404, as for
    any id no row has, instead of a PostgreSQL error."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ROW_ID)
        super().__init__(map, *args, **kwargs)


# What the site's own pages need and nothing more: scripts and style sheets only from files
# on this site (no inline script anywhere, so an injected one never runs), inline `style`
# attributes (the admin and some plugins' tags use them; they cannot run code), images from
# anywhere on HTTPS (content links them), and no other site may frame a page (forms, the
# confirmation page and the admin included). `CONTENT_SECURITY_POLICY` replaces it, e.g. for
# a plugin that loads a script from another site; empty sends none.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "style-src-attr 'unsafe-inline'; img-src 'self' data: https:; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def security_headers(response: Response) -> Response:
    """`after_request` for every response, page-cache hits included (they are built per
    request from the stored body, so nothing here is stored with a page). Headers a view set
    itself are kept (the admin's stricter `Referrer-Policy`)."""
    headers = response.headers
    present = {name.lower() for name in headers.keys()}  # one pass, not a scan per header
    policy = current_app.config.get("CONTENT_SECURITY_POLICY", CONTENT_SECURITY_POLICY)
    if policy and "content-security-policy" not in present:
        headers.add("Content-Security-Policy", policy)
    for name, value in _ALWAYS:
        if name.lower() not in present:
            headers.add(name, value)
    return response


_ALWAYS = (("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"),
           ("Referrer-Policy", "strict-origin-when-cross-origin"))


def favicon() -> Response:
    """The site's icon: browsers ask for `/favicon.ico` whatever a page links to, and a 404
    there is an error in every page's console."""
    return send_from_directory(current_app.static_folder or "", "favicon.ico",
                               mimetype="image/vnd.microsoft.icon", max_age=7 * 86400)


def init_app(app: Flask) -> None:
    app.config.setdefault("CONTENT_SECURITY_POLICY", CONTENT_SECURITY_POLICY)
    app.add_url_rule("/favicon.ico", "favicon", favicon)
    app.after_request(security_headers)
    app.register_blueprint(health)
    app.before_request(apply_body_limit)
    app.before_request(refuse_nul)
