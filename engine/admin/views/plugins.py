"""Plugins: what is installed, on or off (at once, in every process), settings, recent errors.

A plugin's settings page shows its form filled from what is stored, and a save records in the
audit log, in the same transaction, each changed setting's old and new value."""
from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from engine import audit
from engine.admin.blueprint import bp
from engine.auth import require_role
from engine.db import write
from engine.plugins import PluginError
from engine.plugins import current as plugins


def _info_or_404(slug: str) -> Any:
    info = plugins().infos.get(slug)
    if info is None:
        abort(404)
    return info


@bp.get("/plugins")
@require_role("owner")
def plugins_list() -> Any:
    manager = plugins()
    manager.refresh(force=True)
    infos = sorted(manager.infos.values(), key=lambda i: (i.builtin, i.name.lower()))
    errors = {info.slug: manager.recent_errors(info.slug, limit=3) for info in infos}
    has_settings = {info.slug: manager.settings_form_class(info.slug) is not None for info in infos}
    return render_template("admin/plugins.html", infos=infos, manager=manager, errors=errors,
                           has_settings=has_settings)


@bp.post("/plugins/<slug>/enabled")
@require_role("owner")
def plugins_switch(slug: str) -> Any:
    info = _info_or_404(slug)
    enable = request.form.get("enabled") == "1"
    try:
        plugins().set_enabled(slug, enable)
    except PluginError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.plugins_list"))
    audit.record(current_user, "plugin.enable" if enable else "plugin.disable", slug)
    flash(f"{info.name} is {'on' if enable else 'off'}.")
    return redirect(url_for("admin.plugins_list"))


@bp.route("/plugins/<slug>/settings", methods=["GET", "POST"])
@require_role("owner")
def plugins_settings(slug: str) -> Any:
    info = _info_or_404(slug)
    manager = plugins()
    if manager.settings_form_class(slug) is None:
        abort(404)
    if request.method == "POST":
        with write():
            form, changes = manager.save_settings(slug, request.form)
            if not form.errors:
                audit.record(current_user, "plugin.settings", slug,
                             manager.describe_changes(slug, changes))
        if not form.errors:
            flash(f"Settings of {info.name} saved." if changes
                  else f"Settings of {info.name} unchanged.")
            return redirect(url_for("admin.plugins_settings", slug=slug))
        status = 400
    else:
        form = manager.settings_form(slug)
        status = 200
    return render_template("admin/plugin_settings.html", info=info, form=form,
                           errors=manager.recent_errors(slug, limit=20)), status
