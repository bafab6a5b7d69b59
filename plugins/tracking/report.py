"""What the Traffic page shows, read from the roll-ups (a few hundred rows at most)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from engine.db import db
from plugins.tracking.models import (
    DailyPage,
    DailySource,
    DailyTotals,
    MonthlyActives,
    Seen,
)

PRESETS = {"7": "Last 7 days", "30": "Last 30 days", "90": "Last 90 days", "365": "Last 12 months"}


@dataclass
class Period:
    start: date
    end: date  # inclusive
    preset: str = ""

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def period_from(args: Any, today: date) -> tuple[Period, str]:
    """The period asked for (`?days=30`, or `?from=YYYY-MM-DD&to=YYYY-MM-DD`) and an error."""
    start, end = args.get("from", ""), args.get("to", "")
    if start or end:
        try:
            first, last = date.fromisoformat(start), date.fromisoformat(end)
        except ValueError:
            return Period(today - timedelta(days=29), today, "30"), "Dates must be YYYY-MM-DD."
        if first > last:
            first, last = last, first
        if (last - first).days > 3 * 366:
            return Period(today - timedelta(days=29), today, "30"), "Choose at most three years."
        return Period(first, last), ""
    preset = args.get("days", "30")
    preset = preset if preset in PRESETS else "30"
    return Period(today - timedelta(days=int(preset) - 1), today, preset), ""


@dataclass
class Traffic:
    daily: list[dict[str, Any]]
    totals: dict[str, int]
    unique_visitors: int
    top_pages: list[tuple[str, int]]
    referrers: list[tuple[str, int]]
    campaigns: list[tuple[str, int]]
    months: list[dict[str, Any]] = field(default_factory=list)


def traffic(period: Period, limit: int = 10) -> Traffic:
    in_period = DailyTotals.day.between(period.start, period.end)
    stored = {row.day: row for row in db.session.scalars(select(DailyTotals).where(in_period))}
    columns = ("page_views", "visits", "visitors", "contacts", "clicks", "downloads", "form_views")
    daily = []
    for offset in range(period.days):
        day = period.start + timedelta(days=offset)
        row = stored.get(day)
        daily.append({"day": day, **{c: getattr(row, c) if row else 0 for c in columns}})
    totals = {c: sum(d[c] for d in daily) for c in columns}
    unique = db.session.scalar(
        select(func.count(func.distinct(Seen.subject))).where(
            Seen.kind == "v", Seen.period.between(period.start.isoformat(),
                                                  period.end.isoformat()),
            Seen.period.like("____-__-__"))) or 0
    pages = db.session.execute(
        select(DailyPage.path, func.sum(DailyPage.views).label("n"))
        .where(DailyPage.day.between(period.start, period.end))
        .group_by(DailyPage.path).order_by(func.sum(DailyPage.views).desc(), DailyPage.path)
        .limit(limit)).all()
    return Traffic(daily=daily, totals=totals, unique_visitors=int(unique),
                   top_pages=[(p, int(n)) for p, n in pages],
                   referrers=_sources("referrer", period, limit),
                   campaigns=_sources("campaign", period, limit),
                   months=_months(period))


def _sources(kind: str, period: Period, limit: int) -> list[tuple[str, int]]:
    total = func.sum(DailySource.visits)
    rows = db.session.execute(
        select(DailySource.name, total)
        .where(DailySource.kind == kind, DailySource.day.between(period.start, period.end))
        .group_by(DailySource.name).order_by(total.desc(), DailySource.name).limit(limit)).all()
    return [(name, int(n)) for name, n in rows]


def _months(period: Period) -> list[dict[str, Any]]:
    """Monthly active visitors and contacts for the months the period touches (at least 12)."""
    first = min(period.start, period.end.replace(day=1) - timedelta(days=335)).replace(day=1)
    months = []
    cursor = first
    while cursor <= period.end:
        months.append(cursor.isoformat()[:7])
        cursor = (cursor + timedelta(days=32)).replace(day=1)
    stored = {row.month: row for row in db.session.scalars(
        select(MonthlyActives).where(MonthlyActives.month.between(months[0], months[-1])))}
    return [{"month": m, "visitors": stored[m].visitors if m in stored else 0,
             "contacts": stored[m].contacts if m in stored else 0} for m in months]
