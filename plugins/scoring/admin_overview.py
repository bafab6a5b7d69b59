"""Scores seen across contacts: the dashboard card (new MQLs this week, how combined scores
are spread), the contact list's Score column and its Score filter.

Each is one query over `scoring_scores`, whatever the number of contacts: the card groups by
score band (counting new MQLs in the same pass), the column reads one page's rows, the filter
adds one condition. Engagement is
`acc·f` with `f` the decay factor now (`decay.factor`), so "combined ≥ N" is
`acc ≥ (N − fit)·g` with `g = 1/f`, which an index on (fit, acc) serves.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import render_template, url_for
from markupsafe import Markup
from sqlalchemy import Float, Select, case, exists, func, literal, not_, select

from engine.admin.charts import bar_chart
from engine.admin.columns import ContactColumn
from engine.contacts.models import Contact
from engine.contacts.query import ContactFilter
from engine.db import db, utcnow
from plugins.scoring import decay
from plugins.scoring.conditions import contact_scores, shown_bound
from plugins.scoring.models import ContactScore
from plugins.scoring.settings import settings
from plugins.scoring.state import read

S = ContactScore.__table__.c
BANDS = [(None, 0, "below 0"), (0, 25, "0–24"), (25, 50, "25–49"), (50, 75, "50–74"),
         (75, 100, "75–99"), (100, None, "100+")]
WEEK = timedelta(days=7)


def _factor() -> float:
    return 1.0 / read().threshold(1.0)


def card_figures() -> tuple[list[tuple[str, int]], int]:
    """Contacts with a score per band of their combined score as shown (fit plus engagement
    rounded), and how many became marketing-qualified in the last 7 days: one pass over
    `scoring_scores`, in one grouped query."""
    combined = S.fit + S.acc * literal(_factor(), Float)
    band = case(*[(combined < upper - 0.5, index)
                  for index, (_low, upper, _label) in enumerate(BANDS) if upper is not None],
                else_=len(BANDS) - 1)
    scores = select(band.label("band"), case((S.qualified_at >= utcnow() - WEEK, 1),
                                             else_=0).label("new")).subquery()
    rows = db.session.execute(select(scores.c.band, func.count(), func.sum(scores.c.new))
                              .group_by(scores.c.band)).all()
    counts = {index: count for index, count, _ in rows}
    return ([(label, counts.get(index, 0)) for index, (_, _, label) in enumerate(BANDS)],
            sum(int(n or 0) for _, _, n in rows))


def dashboard_card() -> Markup:
    bands, new = card_figures()
    chart = bar_chart(bands, "Contacts by combined score", width=240, height=120)
    return Markup(render_template(
        "scoring/dashboard_card.html", new=new, bands=bands, chart=chart,
        scored=sum(n for _, n in bands),
        new_url=url_for("admin.contacts_list", score="new_mql"),
        rules_url=url_for("scoring_admin.rules")))


# --- the contact list -------------------------------------------------------------------------

def _column(contacts: list[Contact]) -> dict[int, str]:
    """The combined score as the contact's page shows it, and "poor fit"; "—" for none yet."""
    factor = _factor()
    rows = db.session.execute(select(S.contact_id, S.fit, S.acc, S.poor_fit).where(
        S.contact_id.in_([c.id for c in contacts])))
    shown = {contact_id: f"{decay.shown(fit + acc * factor)}" + (" · poor fit" if poor else "")
             for contact_id, fit, acc, poor in rows}
    return {c.id: shown.get(c.id, "—") for c in contacts}


def list_columns() -> list[ContactColumn]:
    return [ContactColumn("Score", _column)]


def _choices() -> list[tuple[str, str]]:
    threshold = settings()["mql_combined"]
    return [("qualified", "Qualified (MQL or later)"),
            ("new_mql", "Became MQL in the last 7 days"),
            ("above_mql", f"Combined ≥ {threshold} (the MQL threshold)"),
            ("poor_fit", "Poor fit"),
            ("none", "No score yet")]


def _filter(query: Select[Any], value: str) -> Select[Any]:
    has = {"qualified": S.qualified_at.is_not(None),
           "new_mql": S.qualified_at >= utcnow() - WEEK,
           "poor_fit": S.poor_fit.is_(True)}
    if value in has:
        return query.where(Contact.id.in_(select(S.contact_id).where(has[value])))
    if value == "above_mql":
        growth = literal(read().threshold(1.0), Float)  # acc ≥ (N − fit)·g, g = 1/factor
        return query.where(contact_scores("combined", "at_least",
                                          shown_bound(settings()["mql_combined"]), growth))
    return query.where(not_(exists(select(S.contact_id).where(S.contact_id == Contact.id))))


def list_filters() -> list[ContactFilter]:
    return [ContactFilter("score", "Score", _choices, _filter)]
