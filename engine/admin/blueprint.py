"""The admin blueprint at /admin: its layout, navigation and response headers."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, render_template, request, url_for
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import BuildError

from engine.admin.menu import MenuItem
from engine.db import MAX_ROW_ID
from engine.plugins import current as plugins

View = TypeVar("View", bound=Callable[..., Any])

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates",
               static_folder="static", static_url_path="/static")

# The core's areas, in menu order; an area appears once its view is registered.
CORE_MENU = (
    MenuItem("Dashboard", "admin.dashboard", "viewer"),
    MenuItem("Pages & posts", "admin.content_list", "editor"),
    MenuItem("Media", "admin.media_list", "editor"),
    MenuItem("Menus", "admin.menus_edit", "editor"),
    MenuItem("Forms", "admin.forms_list", "viewer"),
    MenuItem("Contacts", "admin.contacts_list", "viewer"),
    MenuItem("Companies", "admin.companies_list", "viewer"),
    MenuItem("Lists", "admin.lists_list", "viewer"),
    MenuItem("Segments", "admin.segments_list", "viewer"),
    MenuItem("Email", "admin.mail_templates_list", "viewer"),
    MenuItem("Suppressions", "admin.suppressions_list", "viewer"),
    MenuItem("Site settings", "admin.settings_page", "owner"),
    MenuItem("Custom fields", "admin.fields_list", "owner"),
    MenuItem("Plugins", "admin.plugins_list", "owner"),
    MenuItem("Themes", "admin.themes_list", "owner"),
    MenuItem("Users", "admin.users_list", "owner"),
    MenuItem("Event types", "admin.event_types_list", "owner"),
    MenuItem("API keys", "admin.api_keys_list", "owner"),
    MenuItem("Mail settings", "admin.mail_settings_page", "owner"),
    MenuItem("Audit log", "admin.audit_log", "owner"),
)


@dataclass(frozen=True)
class NavLink:
    label: str
    url: str
    active: bool


def _link(item: MenuItem) -> NavLink | None:
    if not current_user.is_authenticated or not current_user.can(item.role):
        return None
    try:
        url = url_for(item.endpoint)
    except BuildError:
        return None
    return NavLink(item.label, url, _area(item.endpoint) == _area(request.endpoint or ""))


def _area(endpoint: str) -> str:
    """`admin.content_edit` -> `admin.content`, `admin.mail_templates_edit` ->
    `admin.mail_templates` (the view's name without its last word, the action); a plugin's
    endpoint -> its blueprint."""
    blueprint, _, view = endpoint.partition(".")
    return f"{blueprint}.{view.rsplit('_', 1)[0]}" if blueprint == "admin" else blueprint


def row_id(value: str) -> int:
    """A row id from the query string (`?before=`): ValueError, so the argument is ignored, for
    one no row can have (see `MAX_ROW_ID`)."""
    number = int(value)
    if not 0 < number <= MAX_ROW_ID:
        raise ValueError(value)
    return number


def navigation() -> dict[str, list[NavLink]]:
    """The menu this person may see: the core's areas, then enabled plugins' entries."""
    core = [link for item in CORE_MENU if (link := _link(item))]
    extra = []
    for _slug, item in plugins().collect("register_admin_menu"):
        if isinstance(item, MenuItem) and (link := _link(item)):
            extra.append(link)
    return {"core": core, "plugins": sorted(extra, key=lambda link: link.label.lower())}


@bp.app_context_processor
def admin_globals() -> dict[str, Any]:
    return {"admin_navigation": navigation, "site_name": current_app.config["SITE_NAME"]}


def never_cache(response: Response) -> Response:
    """Admin pages (plugins' included) hold private data and change at every action: no cache
    may keep them, and no other site may frame them."""
    if not request.path.startswith(("/admin", "/auth")):
        return response
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.errorhandler(400)
@bp.errorhandler(403)
@bp.errorhandler(404)
@bp.errorhandler(410)
def error_page(exc: Any) -> Any:
    code = getattr(exc, "code", 500) or 500
    return render_template("admin/error.html", code=code,
                           description=getattr(exc, "description", "")), code


def when_too_large(answer: Callable[[], Any]) -> Callable[[View], View]:
    """Mark an upload view (one with `engine.web.body_limit`) with the page that answers a body
    over its limit: the form again, saying how large a file may be. (Put it below
    `require_role`, whose wrapper keeps the mark.)"""
    def mark(view: View) -> View:
        view.magnet_too_large = answer  # type: ignore[attr-defined]
        return view
    return mark


@bp.errorhandler(RequestEntityTooLarge)
def too_large(exc: RequestEntityTooLarge) -> Any:
    view = current_app.view_functions.get(request.endpoint or "")
    answer = getattr(view, "magnet_too_large", None)
    return answer() if answer is not None else exc
