"""The campaigns admin: its pages' addresses.

    /admin/campaigns/                     the campaigns, newest first, with a comparison
    /admin/campaigns/new, /<id>           the editor (`admin_campaigns` lists the rest)
    /admin/campaigns/<id>/report          a campaign's report (+ /report.csv)

Views: `admin_campaigns` (list, from a post; registers `admin_editor`, `admin_preview`,
`admin_actions`, `admin_state`), `admin_report` (report, CSV).
"""
from __future__ import annotations

from flask import Blueprint

from plugins.newsletters import admin_campaigns, admin_report

blueprint = Blueprint("newsletters_admin", __name__, template_folder="templates",
                      url_prefix="/admin/campaigns")

admin_campaigns.register(blueprint)
admin_report.register(blueprint)
