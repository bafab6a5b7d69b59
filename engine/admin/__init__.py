"""The admin for editors and site owners, at /admin.

Server-rendered pages in the admin's own layout (`admin/layout.html`, never the public theme),
with htmx for small live parts. Every view is guarded by `engine.auth.require_role`, every
state-changing request is CSRF-checked (see `engine.auth`), every action is written to the audit
log, and no admin response may be cached.
"""
from __future__ import annotations

from flask import Flask

from engine.admin.columns import ContactColumn
from engine.admin.menu import MenuItem

__all__ = ["ContactColumn", "MenuItem", "init_app"]


def init_app(app: Flask) -> None:
    from engine.admin import views  # noqa: F401  (registers the areas' routes)
    from engine.admin.blueprint import bp, never_cache
    from engine.admin.times import site_time

    app.register_blueprint(bp)
    app.after_request(never_cache)
    app.add_template_filter(site_time)
