"""Themes: choose the site's public look."""
from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from engine import audit
from engine import themes as theme_service
from engine.admin.blueprint import bp
from engine.auth import require_role


@bp.get("/themes")
@require_role("owner")
def themes_list() -> Any:
    registry = theme_service.current()
    registry.refresh(force=True)
    themes = sorted(registry.themes.values(), key=lambda t: t.name)
    return render_template("admin/themes.html", themes=themes, active=registry.active,
                           previews={t.name: theme_service.preview.link(t.name) for t in themes},
                           preview_minutes=theme_service.preview.lifetime() // 60)


@bp.post("/themes/activate")
@require_role("owner")
def themes_activate() -> Any:
    name = request.form.get("name", "")
    try:
        theme = theme_service.current().use(name)
    except theme_service.ThemeError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.themes_list"))
    audit.record(current_user, "theme.activate", theme.name)
    flash(f"{theme.name} is now the site's theme.")
    return redirect(url_for("admin.themes_list"))
