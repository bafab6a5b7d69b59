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
    by_day = stats.new_contacts_by_day()
    return render_template(
        "admin/dashboard.html", contacts=stats.contacts_summary(), by_day=by_day,
        chart=bar_chart(by_day, "New contacts per day, last 30 days"),
        forms=stats.form_figures(), pages=stats.top_pages(), cards=plugin_cards())
