"""Accounts, roles and sign-in for the admin (Flask-Login, argon2, CSRF on admin forms).

Roles are ordered owner > editor > viewer; `require_role` guards every admin view, the core's
and plugins' alike.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Response, abort, g, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFProtect

from engine.auth.models import ROLES, User

__all__ = ["ROLES", "User", "csrf", "require_role"]

F = TypeVar("F", bound=Callable[..., Any])

csrf = CSRFProtect()
login_manager = LoginManager()

# Requests under these paths are the admin's: CSRF-checked with the session's token. Public
# forms and the tracking beacon use their own session-less tokens (their pages are cached).
PROTECTED_PREFIXES = ("/admin", "/auth")


def require_role(role: str) -> Callable[[F], F]:
    """Let through only signed-in, active people with `role` or a higher one.

    Anonymous visitors are sent to the sign-in page (or get a 401 from scripts); signed-in people
    without the role get a 403.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; use one of {ROLES}")

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not current_user.can(role):
                abort(403, f"This needs the {role} role (or a higher one); you are signed in "
                           f"as {'an' if current_user.role in ('owner', 'editor') else 'a'} "
                           f"{current_user.role}. An owner can change your role.")
            return view(*args, **kwargs)
        guarded.required_role = role  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]
    return decorate


class SessionInterface(SecureCookieSessionInterface):
    """Session cookies marked `Secure` whenever the request itself came over HTTPS.

    Most requests are visitors' page views without a session cookie: they get an empty
    session without building a serializer, and nothing is done for it on the way out (Flask
    would build the serializer and read every cookie setting for each of them)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or (
            has_request_context() and request.is_secure)

    def get_signing_serializer(self, app: Flask) -> Any:
        """Flask's serializer, made once per set of keys rather than per request."""
        keys = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        kept = app.extensions.get("magnet.session_serializer")
        if kept is None or kept[0] != keys:
            kept = app.extensions["magnet.session_serializer"] = (
                keys, super().get_signing_serializer(app))
        return kept[1]

    def open_session(self, app: Flask, request: Any) -> Any:
        name, cookies = self.get_cookie_name(app), request.cookies
        if app.secret_key and (name not in cookies or not cookies[name]):
            # (`in` first: a missing key's `get` costs werkzeug a KeyError raised and caught)
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        if not session and not session.modified:  # nothing to set and nothing to delete
            if session.accessed:
                response.vary.add("Cookie")
            return
        super().save_session(app, session, response)


def _load_user(user_id: str) -> User | None:
    from engine.db import db
    uid, _, key = user_id.partition(":")
    if not uid.isdigit() or not key:
        return None
    user = db.session.get(User, int(uid))
    if user is None or not user.active or user.session_key != key:
        return None
    return user


def _csrf_for_admin() -> None:
    if request.path.startswith(PROTECTED_PREFIXES):
        csrf.protect()


def _private_when_signed_in(response: Response) -> Response:
    """A response made for a signed-in person (a page with the admin bar, a preview, their
    account) is theirs alone: `private, no-store`, so no shared cache (a proxy, a CDN) keeps
    it for the next visitor and no browser keeps it after they sign out. Only requests that
    read who is signed in are concerned (Flask-Login remembers the user on `g` once read): an
    anonymous visitor's page costs nothing more, and a view that set its own Cache-Control
    keeps it."""
    user = g.get("_login_user")
    if user is not None and user.is_authenticated and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "private, no-store"
    return response


def init_app(app: Flask) -> None:
    from engine.auth import cli, views

    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # only the admin's paths, below
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # an editor's tab may stay open all day
    lifetime = "PERMANENT_SESSION_LIFETIME"  # "keep me signed in", unless configured otherwise
    if app.config[lifetime] == Flask.default_config[lifetime]:
        app.config[lifetime] = views.session_lifetime()
    app.session_interface = SessionInterface()
    csrf.init_app(app)
    app.before_request(_csrf_for_admin)
    app.after_request(_private_when_signed_in)

    login_manager.init_app(app)
    login_manager.user_loader(_load_user)
    login_manager.unauthorized_handler(views.unauthorized)
    login_manager.login_view = "auth.login"

    app.register_blueprint(views.bp)
    app.cli.add_command(cli.users_group)
