"""Daily and monthly counters, updated by each ingest batch inside its transaction.

Counting at write time keeps the Traffic page fast at any volume: it reads one row per day, not
millions of events. Counters are added with `INSERT ... ON CONFLICT DO UPDATE` (SQLite and
PostgreSQL both have it), and distinct visitors are counted by inserting into `tracking_seen`
with `ON CONFLICT DO NOTHING RETURNING`: the rows actually inserted are exactly the newly
active ones.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from typing import Any
from urllib.parse import unquote

from sqlalchemy.dialects import postgresql, sqlite

from engine import bulk
from engine.db import db
from plugins.tracking.clean import host_and_path
from plugins.tracking.models import (
    DailyPage,
    DailySource,
    DailyTotals,
    MonthlyActives,
    Seen,
)

EVENT_COUNTERS = {"page_view": "page_views", "click": "clicks", "download": "downloads",
                  "form_view": "form_views"}


def _insert() -> Any:
    dialect = db.session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert


def add_up(model: Any, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """Add each row's counters to the stored ones (creating rows as needed)."""
    if not rows:
        return
    table = model.__table__
    stmt = _insert()(table)
    counters = [name for name in rows[0] if name not in keys]
    stmt = stmt.on_conflict_do_update(
        index_elements=keys,
        set_={name: table.c[name] + stmt.excluded[name] for name in counters})
    db.session.execute(stmt, rows)  # one statement, many parameter sets


def newly_seen(period: str, kind: str, subjects: set[str]) -> int:
    """Record who was active in `period`; how many of them were not recorded before."""
    rows = [{"period": period, "kind": kind, "subject": s} for s in sorted(subjects)]
    return len(bulk.insert_rows(db.session.connection(), Seen.__table__, rows,
                                returning=("subject",),
                                skip_conflicts=("period", "kind", "subject")))


def add(events: list[dict[str, Any]], new_visits: list[dict[str, Any]]) -> None:
    """Count one batch of cleaned events (`day`, `type`, `visitor_id`, `contact_id`, `url`)."""
    totals: dict[date, Counter[str]] = defaultdict(Counter)
    pages: Counter[tuple[date, str]] = Counter()
    active_days: dict[tuple[date, str], set[str]] = defaultdict(set)
    for e in events:
        day = e["occurred_at"].date()
        totals[day][EVENT_COUNTERS[e["type"]]] += 1
        if e["type"] == "page_view":
            pages[(day, unquote(host_and_path(e["url"])[1])[:500])] += 1  # readable
        active_days[(day, "v")].add(e["visitor_id"])
        if e.get("contact_id"):
            active_days[(day, "c")].add(str(e["contact_id"]))
    actives: dict[tuple[str, str], set[str]] = defaultdict(set)  # by day and by month
    for (day, kind), subjects in active_days.items():
        actives[(day.isoformat(), kind)] = subjects
        actives[(day.isoformat()[:7], kind)] |= subjects
    sources: Counter[tuple[date, str, str]] = Counter()
    for visit in new_visits:
        day = visit["started_at"].date()
        totals[day]["visits"] += 1
        source, medium, campaign = visit["source"], visit["medium"], visit["campaign"]
        if medium in ("referral", "organic", "social"):
            sources[(day, "referrer", source[:400])] += 1
        if campaign or medium not in ("referral", "organic", "social", "(none)"):
            name = f"{source} / {medium} / {campaign or '(not set)'}"
            sources[(day, "campaign", name[:400])] += 1
    months: dict[str, Counter[str]] = defaultdict(Counter)
    for (period, kind), subjects in actives.items():
        added = newly_seen(period, kind, subjects)
        column = "visitors" if kind == "v" else "contacts"
        if len(period) == 7:
            months[period][column] += added
        else:
            totals[date.fromisoformat(period)][column] += added

    columns = ("page_views", "visits", "visitors", "contacts", "clicks", "downloads", "form_views")
    add_up(DailyTotals, [{"day": day, **{c: counts[c] for c in columns}}
                         for day, counts in totals.items()], ["day"])
    add_up(MonthlyActives, [{"month": m, "visitors": c["visitors"], "contacts": c["contacts"]}
                            for m, c in months.items()], ["month"])
    if pages:
        add_up(DailyPage, [{"day": d, "path": p, "views": n} for (d, p), n in pages.items()],
               ["day", "path"])
    if sources:
        add_up(DailySource, [{"day": d, "kind": k, "name": n, "visits": v}
                             for (d, k, n), v in sources.items()], ["day", "kind", "name"])
