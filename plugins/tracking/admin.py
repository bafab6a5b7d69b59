"""The Traffic page in the admin: visits, visitors, pages, referrers and campaigns over a period."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, render_template, request, url_for
from markupsafe import Markup

from engine.admin.charts import bar_chart
from engine.auth import require_role
from engine.db import utcnow
from plugins.tracking import report
from plugins.tracking.settings import settings

blueprint = Blueprint("tracking_admin", __name__, url_prefix="/admin/traffic")


@blueprint.get("/")
@require_role("viewer")
def traffic() -> Any:
    period, error = report.period_from(request.args, utcnow().date())
    data = report.traffic(period)
    label = "%d %b" if period.days <= 366 else "%b %Y"
    views_chart = bar_chart([(d["day"].strftime(label), d["page_views"]) for d in data.daily],
                            f"Page views per day, {period.start} to {period.end}")
    visitors_chart = bar_chart([(d["day"].strftime(label), d["visitors"]) for d in data.daily],
                               f"Visitors per day, {period.start} to {period.end}")
    months_chart = bar_chart([(m["month"], m["visitors"]) for m in data.months],
                             "Monthly active visitors")
    kept_since = utcnow().date() - timedelta(days=int(settings()["retention_days"]))
    return render_template("tracking/traffic.html", period=period, error=error, data=data,
                           kept_since=kept_since if period.start < kept_since else None,
                           presets=report.PRESETS, views_chart=views_chart,
                           visitors_chart=visitors_chart, months_chart=months_chart)


def dashboard_card() -> Markup:
    """Last 7 days at a glance on the admin dashboard, linking to the Traffic page."""
    week = report.traffic(report.Period(utcnow().date() - timedelta(days=6), utcnow().date()),
                          limit=1)
    return Markup(
        '<h2>Traffic, last 7 days</h2><p class="stat">{views:,}</p>'
        '<p class="stat-label">page views by {visitors:,} visitors</p>'
        '<p><a href="{url}">See traffic</a></p>').format(
        views=week.totals["page_views"], visitors=week.unique_visitors,
        url=url_for("tracking_admin.traffic"))
