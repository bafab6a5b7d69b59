"""Site settings (owners only): the site's name and words, images, brand colours, social
profiles, time zone, language and the sender of its emails (`engine.content.site_settings`).

Only fields whose value changed are stored (as set in the admin, so `magnet content sync`
leaves them alone), each change is in the audit log with its old and new value, and saving
moves the site's generation on, so visitors see the change at once. A bad field, or brand
colours whose text would fall under WCAG AA contrast, saves nothing.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from engine import audit
from engine.admin.blueprint import bp
from engine.auth import require_role
from engine.content import site_settings
from engine.content.site_settings import FIELDS, HEX, THEME_COLOURS, SettingsError
from engine.db import write
from engine.mail.settings import configured_sender


@lru_cache(maxsize=1)
def zones() -> tuple[str, ...]:
    """IANA zone names for the select: regions' zones and UTC, not the legacy aliases."""
    return (*sorted(name for name in available_timezones()
                    if "/" in name and not name.startswith(("Etc/", "SystemV/", "US/"))),
            "UTC")


def _shown(values: dict[str, Any]) -> dict[str, str]:
    return {key: "\n".join(value) if isinstance(value, list) else str(value or "")
            for key, value in values.items()}


def _swatches(values: dict[str, str]) -> dict[str, str]:
    """Each colour field's sample: its value when it is a hex colour (nothing else goes into a
    style attribute), else the theme's."""
    return {key: value if HEX.fullmatch(value := values.get(key, "").strip().lower()) else default
            for key, default in THEME_COLOURS.items()}


def _page(values: dict[str, str], errors: dict[str, str] | None = None,
          status: int = 200) -> Any:
    return render_template("admin/site_settings.html", values=values, errors=errors or {},
                           fields={f.key: f for f in FIELDS}, zones=zones(),
                           theme_colours=THEME_COLOURS, swatches=_swatches(values),
                           fallback_sender=configured_sender()
                           ), status


@bp.get("/settings")
@require_role("owner")
def settings_page() -> Any:
    return _page(_shown(site_settings.current()))


@bp.post("/settings")
@require_role("owner")
def settings_save() -> Any:
    form = {f.key: request.form.get(f.key, "") for f in FIELDS if f.key in request.form}
    try:
        changes = site_settings.changes_from(form)
    except SettingsError as exc:
        shown = {**_shown(site_settings.current()), **form}
        return _page(shown, exc.errors, 400)
    if not changes:
        flash("Nothing changed.")
        return redirect(url_for("admin.settings_page"))
    with write():
        site_settings.store({key: new for key, (_old, new) in changes.items()})
        audit.record(current_user, "site.settings", "Site settings",
                     {key: {"old": old, "new": new} for key, (old, new) in changes.items()})
    labels = {f.key: f.label for f in FIELDS}
    flash("Site settings saved: " + ", ".join(labels[key].lower() for key in changes) + ".")
    return redirect(url_for("admin.settings_page"))
