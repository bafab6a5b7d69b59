"""Previewing a theme on the public site before switching to it, for one browser only.

The active theme is process-wide, so a preview is a per-request override: a signed,
short-lived link (`/?preview_theme=<name>&sig=<token>`, made by the admin for owners) turns
it on, and a cookie holding the same token keeps it on while the owner clicks around the site.
Everything else keeps working as usual because of three rules:
- `Themes.chain()` (template search order and static files) follows the request's preview;
- Jinja's template cache is scoped by the previewed theme (`ThemeScopedCache`), so two themes'
  `page.html` never share an entry and the active theme's compiled templates are untouched;
- the page cache bypasses previewing requests (`engine.content.cache.cacheable_request`), and
  their responses say `private, no-store`, so no visitor is ever served a preview.
A forged, expired or foreign token is ignored: the request sees the active theme.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import (
    Flask,
    Response,
    current_app,
    g,
    has_request_context,
    redirect,
    request,
)
from jinja2.utils import LRUCache
from markupsafe import escape

from engine.web import signing

PURPOSE = "theme-preview"
COOKIE = "magnet_theme_preview"
DEFAULT_SECONDS = 3600
EXEMPT_PREFIXES = ("/admin", "/auth")  # the admin never changes look while previewing
# Static files are named by the previewing page itself (`theme_url`), so they need no preview.
EXEMPT_ENDPOINTS = ("static", "themes.static", "plugin_static", "themes.preview_end")
END_PATH = "/themes/preview/end"


def lifetime() -> int:
    return int(current_app.config.get("THEME_PREVIEW_SECONDS", DEFAULT_SECONDS))


def link(name: str, path: str = "/") -> str:
    """A link that shows the site at `path` in theme `name` for `lifetime()` seconds."""
    token = signing.sign(PURPOSE, name)
    return f"{path}?{urlencode({'preview_theme': name, 'sig': token})}"


def _verified(token: str, name: str | None = None) -> str | None:
    """The theme a token grants, if its signature holds, it is fresh and the theme exists
    (among the themes the registry found: this module sits below it)."""
    try:
        granted = signing.unsign(PURPOSE, token, lifetime())
    except signing.BadToken:
        return None
    if not isinstance(granted, str) or (name is not None and granted != name):
        return None
    return granted if granted in current_app.extensions["magnet.themes"].themes else None


def previewed() -> str | None:
    """The theme this request previews, or None (outside requests too). Decided on first use,
    so a caller that runs before this module's `before_request` (the page cache, which answers
    first) sees the same answer as the view."""
    if not has_request_context():
        return None
    ctx_g = g._get_current_object()
    if "preview_resolved" not in ctx_g:
        resolve()
    return ctx_g.get("preview_theme")


def none_asked() -> None:
    """Decide that this request previews nothing, for a caller that has seen it carries
    neither a preview link's argument nor the preview cookie (the page cache's lane), so
    `resolve` need not look again."""
    g.preview_resolved = True


def resolve() -> None:
    """`before_request`: decide once per request whether it previews, from the link or cookie."""
    ctx_g, req = g._get_current_object(), request._get_current_object()
    if "preview_resolved" in ctx_g:
        return
    ctx_g.preview_resolved = True
    if req.path.startswith(EXEMPT_PREFIXES) or req.endpoint in EXEMPT_ENDPOINTS:
        return
    args = req.args  # `in` first: werkzeug's `get` of a missing key raises and catches
    name = args.get("preview_theme") if "preview_theme" in args else None
    token = args.get("sig") if "sig" in args else None
    if name and token:
        theme = _verified(token[:500], name[:100])
        if theme:
            ctx_g.preview_theme, ctx_g.preview_token = theme, token[:500]
            return
    cookie = req.cookies.get(COOKIE) if COOKIE in req.cookies else None
    if cookie:
        theme = _verified(cookie[:500])
        if theme:
            ctx_g.preview_theme = theme


def finish(response: Response) -> Response:
    """`after_request`: keep a preview private, remember a fresh link, show the banner."""
    theme = previewed()
    if theme is None:
        return response
    response.headers["Cache-Control"] = "private, no-store"
    response.headers.pop("ETag", None)
    response.vary.add("Cookie")
    token = g.get("preview_token")
    if token:
        response.set_cookie(COOKIE, token, max_age=lifetime(), httponly=True, samesite="Lax",
                            secure=request.is_secure, path="/")
    if (response.mimetype == "text/html" and not response.direct_passthrough
            and not response.is_streamed):
        body = response.get_data(as_text=True)
        if "</body>" in body:
            response.set_data(body.replace("</body>", banner(theme) + "</body>", 1))
    return response


def banner(theme: str) -> str:
    """A fixed notice so the owner never mistakes the preview for the live site."""
    return (
        '<div role="status" id="magnet-theme-preview" style="position:fixed;inset:auto 0 0 0;'
        "z-index:2147483647;padding:.6rem 1rem;background:#1d2733;color:#fff;"
        'font:15px/1.4 system-ui,sans-serif;text-align:center">'
        f"Previewing the theme <strong>{escape(theme)}</strong>; visitors still see the "
        f'active theme. <a href="{END_PATH}" style="color:#9fd3ff">End preview</a></div>')


def end() -> Any:
    """Forget the preview cookie and go back to the live site."""
    response = redirect("/")
    response.delete_cookie(COOKIE, path="/")
    response.headers["Cache-Control"] = "private, no-store"
    return response


class ThemeScopedCache(LRUCache):
    """Jinja's template cache, with previewing requests' entries kept apart by theme.

    Jinja keys compiled templates by name only; without this, a preview of `page.html` would
    be served from (or poison) the entry of the active theme's `page.html`.
    """

    @staticmethod
    def _scoped(key: Any) -> Any:
        theme = previewed()
        return key if theme is None else ("theme-preview", theme, key)

    def __getitem__(self, key: Any) -> Any:
        return super().__getitem__(self._scoped(key))

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(self._scoped(key), value)

    def __contains__(self, key: Any) -> bool:
        return super().__contains__(self._scoped(key))

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(self._scoped(key))


def init_app(app: Flask) -> None:
    capacity = getattr(app.jinja_env.cache, "capacity", 400)
    app.jinja_env.cache = ThemeScopedCache(capacity)
    app.before_request(resolve)
    app.after_request(finish)
