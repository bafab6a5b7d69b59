"""The page cache: what anonymous visitors see, rendered once per process and change.

Entries live in each process's memory (a bounded LRU), keyed by
`(generation, plugin state, variant, path)`:
- `generation` is the site's generation (`engine.web.generation`). Publishing, unpublishing,
  saving a published item, switching the theme, saving a plugin's settings, or anything
  calling `invalidate()` bumps it in the same transaction as the change, so every web process,
  on every machine, misses within a quarter of a second (the process that made the change at
  once).
- the plugin state stamp changes when a plugin is enabled or disabled (its slots change pages);
- `variant` comes from the `filter_page_variant` hook, so personalising plugins (smart
  content) add what they vary on, and the cache keeps one copy per variant;
- the path without its query string: public pages do not read it (`?utm_source=...` must not
  make a new copy), so random query strings cannot flood the cache either; a plugin that
  varies on a query parameter says so through the variant;
- an entry also expires when the next scheduled item becomes due: a listing rendered before a
  post's time must not be served after it.

Requests from signed-in editors (a valid session or remember-me cookie, not merely one named
so) and theme previews (`engine.themes.preview`, resolved before the key is made) bypass the
cache. With `SITE_URL` set, the request's `Host` header is not part of the key. Values that
must be fresh in each response (a form's signed token) are stored as markers and made when the
page is served (`engine.web.late`).

A hit is answered by `serve_hit`, the app's first `before_request`, or ahead of Flask's routing
and dispatch by the lane (`engine.content.lane`) when Flask has served that path from the
cache before (`PageCache.learn`) and the request carries no session, remember-me or preview
cookie and no preview link; both run the same `serve_hit` and the same `after_request`
functions, so a response does not depend on which answered it.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any

from flask import Flask, Request, Response, current_app, request
from werkzeug.routing import Rule

from engine import plugins
from engine.db import utcnow
from engine.themes import current as themes
from engine.themes.preview import previewed
from engine.web import generation as site_generation
from engine.web import late

MAX_ENTRIES = 2000
PUBLIC = "public, max-age=0, must-revalidate"
BYPASS_COOKIES = ("session", "remember_token")


@dataclass(frozen=True)
class Entry:
    body: bytes
    status: int
    content_type: str
    etag: str
    expires_at: datetime | None
    segments: late.Segments = ()  # the body cut at its late values (`engine.web.late`), if any


class PageCache:
    """`app.extensions["magnet.page_cache"]`: this process's entries, and the routes of the
    paths it served (`learn`, for `engine.content.lane`)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[Any, ...], Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.routes: dict[tuple[str, str], tuple[Rule, dict[str, Any]]] = {}

    def learn(self, req: Request) -> None:
        """Remember the route of a request answered from the cache, by method and path as
        the WSGI server gave them: a URL map routes one path to one view, so the next
        request for it can be answered without routing (the lane). Only paths of stored
        pages are learned, so random URLs cannot fill it; it starts again when too big."""
        where = (req.method, req.environ.get("PATH_INFO", ""))
        if where in self.routes or req.url_rule is None:
            return
        routes = self.routes if len(self.routes) < 4 * self.max_entries else {}
        routes[where] = (req.url_rule, dict(req.view_args or {}))
        self.routes = routes  # one assignment: a request sees the old table or the new one

    def get(self, key: tuple[Any, ...]) -> Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires_at is not None and utcnow() >= entry.expires_at:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: tuple[Any, ...], entry: Entry) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def generation() -> int:
    """The site's generation (`engine.web.generation`), part of every key."""
    return site_generation.current()


def invalidate() -> None:
    """Make every process re-render its pages (the site's generation moves on). Inside the
    `write()` that changes them, it commits with that change; on its own, it commits at once."""
    site_generation.bump()
    current_app.extensions["magnet.page_cache"].clear()


def cacheable_request() -> bool:
    """Anonymous GETs only: not signed-in editors, not a theme preview (which must never be
    stored, or visitors would be served it)."""
    return request.method in ("GET", "HEAD") and previewed() is None and not _signed_in()


def _signed_in() -> bool:
    """Whether the request carries a valid signed-in session (or remember-me cookie). Only the
    cookie's presence would let anyone skip the cache, and make a render, by sending
    `Cookie: session=x`; checking the signature costs only requests that carry one."""
    cookies = request.cookies
    if not any(name in cookies for name in BYPASS_COOKIES):
        return False
    if "remember_token" in cookies:
        from flask_login.utils import decode_cookie
        if decode_cookie(cookies["remember_token"]) is not None:
            return True
    if "session" in cookies:
        session = current_app.session_interface.open_session(current_app, request)
        return bool(session and session.get("_user_id"))
    return False


def _host(app: Flask, req: Request) -> str:
    """The host part of the key. With `SITE_URL` set, pages link only to it, so every `Host`
    header gets the same page and must not cost a render of its own; without it, pages build
    absolute links from the request's scheme and host, which then key them (as they arrived:
    two spellings that `request.host_url` would show alike get a copy each, never one)."""
    return "" if app.config.get("SITE_URL") else f"{req.scheme}://{req.host}/"


def _key() -> tuple[Any, ...] | None:
    """This request's cache key, or None when it must not use the cache (once per request)."""
    from flask import g

    if "magnet_cache_key" in g:
        return g.magnet_cache_key
    gen = generation()
    themes().refresh(generation=gen)
    key = None
    if cacheable_request():
        app, req = current_app._get_current_object(), request._get_current_object()
        manager = plugins.current()
        manager.refresh()
        variant = manager.filter("filter_page_variant", "", request=req)
        # The host is part of the key: without SITE_URL, pages build absolute links from the
        # request's Host header, and one forged header must never reach other visitors.
        key = (gen, manager.enabled, str(variant), _host(app, req), req.path)
    g.magnet_cache_key = key
    return key


def _respond(entry: Entry, state: str) -> Response:
    """The stored page, with its late values (`engine.web.late`) made for this response; such a
    page has no ETag, since no two responses are the same and a browser's copy must not be
    revalidated into reuse."""
    body = late.join(entry.segments) if entry.segments else entry.body
    response = Response(body, status=entry.status, headers=[
        ("Content-Type", entry.content_type), ("Cache-Control", PUBLIC),
        ("X-Magnet-Cache", state)])  # given whole: each header set later scans the others
    if entry.segments:
        return response
    response.set_etag(entry.etag)
    return response.make_conditional(request)


def serve_hit() -> Response | None:
    """Answer a cached page before the rest of the request cycle (the first `before_request`,
    and the lane's whole work before the `after_request` functions): a hit then costs the key
    (its variant included) and a dictionary lookup, not a render."""
    view = current_app.view_functions.get(request.endpoint or "")
    if not getattr(view, "magnet_cached", False):
        return None
    key = _key()
    store: PageCache = current_app.extensions["magnet.page_cache"]
    entry = store.get(key) if key else None
    if entry is None:
        return None
    store.learn(request._get_current_object())
    return _respond(entry, "hit")


def cached(view: Callable[..., Any]) -> Callable[..., Any]:
    """Serve an anonymous GET from the cache; store a 200 response the view renders.

    The view may set `g.cache_expires_at` (the next scheduled publication) on a miss.
    """
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from flask import g

        key = _key()
        if key is None:
            return view(*args, **kwargs)
        store: PageCache = current_app.extensions["magnet.page_cache"]
        entry = store.get(key)
        state = "hit"
        if entry is None:
            state = "miss"
            setattr(g, late.COLLECTING, True)
            response = current_app.make_response(view(*args, **kwargs))
            setattr(g, late.COLLECTING, False)
            if response.status_code != 200 or response.direct_passthrough:
                return _filled(response)
            body = response.get_data()
            entry = Entry(body=body, status=200, content_type=response.content_type,
                          etag=hashlib.blake2b(body, digest_size=12).hexdigest(),
                          expires_at=g.get("cache_expires_at"),
                          segments=late.split(body) if g.get(late.USED) else ())
            store.put(key, entry)
        store.learn(request._get_current_object())
        return _respond(entry, state)
    wrapper.magnet_cached = True  # type: ignore[attr-defined]
    return wrapper


def _filled(response: Response) -> Response:
    """A response rendered for the cache but not kept (not a 200): its markers filled now."""
    from flask import g
    if g.get(late.USED) and not response.direct_passthrough:
        response.set_data(late.fill(response.get_data()))
    return response


def init_app(app: Flask) -> None:
    app.extensions["magnet.page_cache"] = PageCache()
    app.before_request_funcs.setdefault(None, []).insert(0, serve_hit)
