"""A campaign's report in the admin, and its CSV.

    GET  /admin/campaigns/<id>/report      the figures, links, variants, first 48 hours and the
                                           last campaigns side by side (viewers and up)
    POST /admin/campaigns/<id>/report.csv  one row per recipient (editors and up)

The CSV holds every recipient's address, so it is exported the way the core exports personal
data (a segment's members, a form's submissions): a POST with the CSRF token, by an editor, and
written to the audit log. The hour-by-hour chart is the core's server-drawn SVG
(`engine.admin.charts`), with the same numbers as a table beside it.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, render_template
from flask_login import current_user

from engine import audit
from engine.admin.charts import line_chart
from engine.auth import require_role
from engine.contacts.timezones import site_zone
from engine.contacts.transfer import BOM
from engine.db import db
from plugins.newsletters import reports, service
from plugins.newsletters.admin_form import campaign_or_404
from plugins.newsletters.models import Campaign


@require_role("viewer")
def report(campaign_id: int) -> Any:
    campaign = campaign_or_404(campaign_id)
    found = reports.report(campaign)
    zone = site_zone()
    chart = ""
    if found.hours and any(h.opens or h.clicks for h in found.hours):
        chart = line_chart(
            [h.at.astimezone(zone).strftime("%a %H:%M") for h in found.hours],
            [("Opens", [h.opens for h in found.hours]),
             ("Clicks", [h.clicks for h in found.hours])],
            f"First opens and clicks per hour, the first {reports.HOURS} hours")
    would_reach = None if campaign.started_at else service.audience_count(campaign)
    return render_template("newsletters/report.html", campaign=campaign, report=found,
                           chart=chart, zone=zone, comparison=reports.comparison(),
                           would_reach=would_reach,
                           can_export=current_user.can("editor"))


@require_role("editor")
def report_csv(campaign_id: int) -> Any:
    campaign = campaign_or_404(campaign_id)
    audit.record(current_user, "campaign.export", campaign.name,
                 {"campaign_id": campaign.id})
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    wanted = campaign.id

    def lines() -> Iterator[str]:
        with app.app_context():  # its own session, alive while the file streams
            buffer = io.StringIO()
            buffer.write(BOM)
            writer = csv.writer(buffer)
            for count, row in enumerate(reports.csv_rows(db.session.get(Campaign, wanted)),
                                        start=1):
                writer.writerow(row)
                if count % 1000 == 0:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue()

    slug = re.sub(r"[^a-z0-9]+", "-", campaign.name.lower()).strip("-")[:60] or "campaign"
    return Response(lines(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="campaign-{campaign.id}-{slug}.csv"'})


def register(blueprint: Blueprint) -> None:
    """Add the report's routes."""
    blueprint.add_url_rule("/<int:campaign_id>/report", "report", report)
    blueprint.add_url_rule("/<int:campaign_id>/report.csv", "report_csv", report_csv,
                           methods=["POST"])
