"""Why a contact's score is what it is: every rule's share, when it was earned, how much of it
has faded, and a one-line reason a salesperson can read at a glance.

The same explanation serves the contact's page, the hand-off email and
`magnet scoring explain`. Scores are shown rounded (`decay.shown`), and thresholds compare the
score as shown, so a score shown as 50 has reached a threshold of 50; shares are rounded so
that they add up exactly to the score shown (largest remainders).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from engine.contacts.models import Contact
from engine.db import db, utcnow
from plugins.scoring import decay
from plugins.scoring.models import (
    ContactScore,
    FitHistory,
    FitMatch,
    ScoreAward,
    ScoringRule,
)
from plugins.scoring.state import read

HISTORY_DAYS = 90
REASON_PARTS = 4
STAGE_LABELS = {"subscriber": "Subscriber", "lead": "Lead", "marketing_qualified": "MQL",
                "sales_qualified": "SQL", "opportunity": "Opportunity", "customer": "Customer",
                "evangelist": "Evangelist", "other": "Other"}


@dataclass
class Award:
    at: datetime
    points: int
    now: float  # what is left of the points after decay


@dataclass
class Line:
    """One rule's share of a score."""

    rule_id: int
    name: str
    kind: str
    value: float  # exact
    shown: int = 0  # rounded so the lines add up to the score shown
    earned: int = 0  # points given, before decay
    awards: list[Award] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.awards)

    @property
    def faded(self) -> float:
        return self.earned - self.value

    @property
    def last(self) -> datetime | None:
        return max((a.at for a in self.awards), default=None)


@dataclass
class Explanation:
    contact_id: int
    stage: str
    fit: int
    engagement: int
    combined: int
    engagement_exact: float
    fit_lines: list[Line]
    engagement_lines: list[Line]
    poor_fit: bool
    qualified_at: datetime | None
    half_life_days: float
    reason: str = ""
    history: list[tuple[date, int, float]] = field(default_factory=list)  # day, fit, engagement


def explain(contact_id: int, now: datetime | None = None, history: bool = True) -> Explanation:
    """The explanation of a contact's scores at `now` (default: the engine's clock)."""
    now = now or utcnow()
    state = read()
    contact = db.session.get(Contact, contact_id)
    score = db.session.get(ContactScore, contact_id)
    names = {r.id: r for r in db.session.scalars(select(ScoringRule))}
    fit_lines = [Line(rule.id, rule.name, "fit", float(rule.points), rule.points, rule.points)
                 for rule in (names.get(rule_id) for rule_id in db.session.scalars(
                     select(FitMatch.rule_id).where(FitMatch.contact_id == contact_id)))
                 if rule is not None and rule.active]
    awards = list(db.session.execute(
        select(ScoreAward.rule_id, ScoreAward.points, ScoreAward.occurred_at)
        .where(ScoreAward.contact_id == contact_id).order_by(ScoreAward.occurred_at)))
    by_rule: dict[int, Line] = {}
    for rule_id, points, at in awards:
        rule = names.get(rule_id)
        line = by_rule.get(rule_id)
        if line is None:
            line = by_rule[rule_id] = Line(rule_id, rule.name if rule else "A deleted rule",
                                           rule.kind if rule else "engagement", 0.0)
        left = decay.decayed(points, at, now, state.half_life_days)
        line.awards.append(Award(at, points, left))
        line.value += left
        line.earned += points
    engagement_lines = sorted(by_rule.values(), key=lambda line: -abs(line.value))
    fit_lines.sort(key=lambda line: -abs(line.value))
    fit = score.fit if score else 0
    exact = state.value(score.acc, now) if score else 0.0
    shown = decay.shown(exact)
    share(fit_lines, fit)
    share(engagement_lines, shown)
    result = Explanation(contact_id, contact.lifecycle_stage if contact else "", fit, shown,
                         fit + shown, exact, fit_lines, engagement_lines,
                         bool(score and score.poor_fit), score.qualified_at if score else None,
                         state.half_life_days)
    result.reason = reason(result)
    if history:
        result.history = _history(contact_id, awards, now, state.half_life_days)
    return result


def share(lines: list[Line], total: int) -> None:
    """Round each line's value so the rounded values add up to `total` exactly: floor every
    value, then give the units still missing to the largest remainders (or take them back from
    the smallest, when rounding the total went down)."""
    if not lines:
        return
    floors = [math.floor(line.value) for line in lines]
    missing = total - sum(floors)
    order = sorted(range(len(lines)), key=lambda i: lines[i].value - floors[i],
                   reverse=missing > 0)
    for step in range(abs(missing)):
        floors[order[step % len(lines)]] += 1 if missing > 0 else -1
    for line, value in zip(lines, floors, strict=True):
        line.shown = value


def reason(result: Explanation) -> str:
    """"MQL since 3 May: Pricing page ×3, Webinar attended, Company size 50–500"."""
    stage = STAGE_LABELS.get(result.stage, result.stage.replace("_", " ").capitalize())
    head = f"{stage} since {_day(result.qualified_at)}" if result.qualified_at and \
        result.stage in ("marketing_qualified", "sales_qualified") else stage
    if result.poor_fit:
        head += " (poor fit)"
    parts = sorted([line for line in result.engagement_lines + result.fit_lines
                    if line.shown or line.value],
                   key=lambda line: -abs(line.shown or line.value))[:REASON_PARTS]
    words = [f"{line.name} ×{line.count}" if line.count > 1 else line.name for line in parts]
    return f"{head}: {', '.join(words)}" if words else f"{head}: no points yet"


def _day(moment: datetime) -> str:
    return f"{moment.day} {moment.strftime('%b %Y')}"


def _history(contact_id: int, awards: list[Any], now: datetime,
             half_life_days: float) -> list[tuple[date, int, float]]:
    """Fit and engagement at the end of each of the last 90 days (today: now)."""
    fits = list(db.session.execute(select(FitHistory.day, FitHistory.fit).where(
        FitHistory.contact_id == contact_id).order_by(FitHistory.day)))
    days = [now.date() - timedelta(days=n) for n in range(HISTORY_DAYS - 1, -1, -1)]
    points: list[tuple[date, int, float]] = []
    fit, index = 0, 0
    for day in days:
        while index < len(fits) and fits[index][0] <= day:
            fit = fits[index][1]
            index += 1
        end = now if day == now.date() else datetime.combine(day + timedelta(days=1), time(),
                                                             tzinfo=UTC)
        engagement = sum(decay.decayed(p, at, end, half_life_days)
                         for _rule, p, at in awards if at <= end)
        points.append((day, fit, engagement))
    return points
