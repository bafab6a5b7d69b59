"""The dashboard: contacts, form conversions, top pages, and cards from plugins."""
from __future__ import annotations

from typing import Any

from flask import render_template
from markupsafe import Markup

from engine.admin import stats
from engine.admin.blueprint import bp
from engine.admin.charts import bar_chart
from engine.auth import require_role
from engine.plugins import current as plugins


def plugin_cards() -> list[Markup]:
    """Each card is a callable returning HTML; one that raises is reported and left out."""
    manager = plugins()
    cards = []
    for slug, card in manager.collect("register_dashboard_cards"):
        try:
            cards.append(Markup(card()))
        except Exception as exc:  # the engine's boundary: one broken card never breaks the page
            manager.report_error(slug, "register_dashboard_cards", exc)
    return cards


@bp.get("/")
@require_role("viewer")
def dashboard() -> Any:
    figures = stats.dashboard_figures()
    return render_template(
        "admin/dashboard.html", **figures, cards=plugin_cards(),
        chart=bar_chart(figures["by_day"], "New contacts per day, last 30 days"))
