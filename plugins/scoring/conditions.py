"""Segment conditions on scores: "engagement score is at least 50", "became
marketing-qualified in the last 30 days". Fit rules cannot use them (a score cannot depend on
itself), but segments, and what builds on segments, can.

Scores are tested in SQL over `scoring_scores`, joined by contact id; a contact without a row
has fit 0 and engagement 0. Engagement is never computed row by row: "engagement ≥ N" is the
indexable `acc ≥ N·g(now)` with `g(t) = 2^((t − epoch)/h)` (`models`' docstring), and g is
computed inside the same statement from the `scoring_state` row (`growth()`), with the moment
bound as a parameter whose value is taken each time the statement runs. Reading the epoch in
the statement that reads the accs is what keeps a rebase (which moves the epoch and rescales
every acc in one transaction) from ever pairing a new acc with an old epoch.

Decay changes engagement with no event, so the score condition lists `candidates(t0, t1)`: the
contacts whose engagement or combined score crossed the threshold between two ticks of the
segments' clock (`engine.segments.service.tick`).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Float, and_, bindparam, exists, func, literal, not_, or_, select
from sqlalchemy.sql import ColumnElement, Select

from engine.contacts.models import Contact
from engine.db import UTCDateTime, utcnow
from engine.segments.conditions import Compiled, ConditionError, ConditionKind
from plugins.scoring import decay
from plugins.scoring.models import ContactScore, ScoringState

C = Contact.__table__.c
S = ContactScore.__table__.c
STATE = ScoringState.__table__.c
WHICH = {"fit": "Fit", "engagement": "Engagement", "combined": "Combined"}
OPS = {"at_least": "is at least", "below": "is below"}
WHEN = {"ever": "at any time", "within_last_days": "in the last … days",
        "before": "before a date", "after": "after a date"}
EVENTS = frozenset({"score_changed", "stage_changed"})
MAX_DAYS = 36_600

# The moment a statement runs, in Unix seconds: computed anew at each execution.
NOW = bindparam("scoring_now", type_=Float, callable_=lambda: decay.seconds(utcnow()))


def growth(at: Any = NOW) -> ColumnElement[float]:
    """`2^((at − epoch)/h)` from the state row, in SQL (1 before any state exists, when every
    acc is 0 anyway): what turns an engagement score into the acc that has it at `at`."""
    exponent = (at - STATE.epoch_seconds) / (STATE.half_life_days * decay.DAY)
    found = select(decay.power2(exponent)).where(STATE.id == 1).scalar_subquery()
    return func.coalesce(found, literal(1.0, Float))


def score_test(which: str, op: str, value: float, g: Any = None) -> ColumnElement[bool]:
    """A `scoring_scores` row's `which` score `op` `value` (g: `growth()` by default)."""
    g = growth() if g is None else g
    if which == "fit":
        left, right = S.fit, literal(value, Float)
    elif which == "engagement":
        left, right = S.acc, value * g
    else:  # combined = fit + acc/g, and g > 0: combined ≥ N ⟺ acc + fit·g ≥ N·g
        left, right = S.acc + S.fit * g, value * g
    return left >= right if op == "at_least" else left < right


def shown_bound(value: float) -> float:
    """The exact score at which a score *as shown* (`decay.shown`, to the nearest whole number)
    reaches `value`: shown ≥ N exactly when exact ≥ ⌈N⌉ − 0.5, so conditions, filters and
    stages agree with the number people read."""
    return math.ceil(value) - 0.5


def contact_scores(which: str, op: str, value: float, g: Any = None) -> ColumnElement[bool]:
    """The same test over `contacts`, a contact without a score row counting as 0: an EXISTS
    when 0 fails the test, a NOT EXISTS of the rows failing it when 0 passes."""
    zero_passes = 0 >= value if op == "at_least" else 0 < value
    other = "below" if op == "at_least" else "at_least"
    if zero_passes:
        return not_(exists(select(S.contact_id).where(
            S.contact_id == C.id, score_test(which, other, value, g))))
    return exists(select(S.contact_id).where(S.contact_id == C.id,
                                             score_test(which, op, value, g)))


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConditionError("Type the score to compare with, as a number.") from None
    if number != number or abs(number) > 1e9:
        raise ConditionError("Type the score to compare with, as a number.")
    return number


def _score(condition: dict[str, Any]) -> Compiled:
    which, op = condition.get("which"), condition.get("op")
    if which not in WHICH:
        raise ConditionError("Choose the fit, engagement or combined score.")
    if op not in OPS:
        raise ConditionError("A score condition is “at least” or “below” a number.")
    value = shown_bound(_number(condition.get("value")))
    candidates = () if which == "fit" else (_crossing(which, value),)
    return Compiled(contact_scores(which, op, value), events=frozenset({"score_changed"}),
                    candidates=candidates)


def _crossing(which: str, value: float) -> Callable[[datetime, datetime], Select[Any]]:
    """Contacts whose decaying engagement crossed `value` (or, for combined, `value − fit`)
    between t0 and t1: their acc lies between the thresholds at the two moments."""
    def query(t0: datetime, t1: datetime) -> Select[Any]:
        g0 = growth(literal(decay.seconds(t0), Float))
        g1 = growth(literal(decay.seconds(t1), Float))
        if which == "engagement":
            low, high = (value * g0, value * g1) if value >= 0 else (value * g1, value * g0)
            return select(S.contact_id).where(S.acc != 0, S.acc.between(low, high))
        first, second = (value - S.fit) * g0, (value - S.fit) * g1
        return select(S.contact_id).where(S.acc != 0, or_(
            and_(S.acc >= first, S.acc <= second), and_(S.acc >= second, S.acc <= first)))
    return query


def _days(value: Any) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConditionError("Type the number of days.") from None
    if number != int(number) or not 1 <= number <= MAX_DAYS:
        raise ConditionError(f"The number of days must be a whole number from 1 to {MAX_DAYS}.")
    return int(number)


def _midnight(value: Any) -> datetime:
    try:
        day = date.fromisoformat(str(value or ""))
    except ValueError:
        raise ConditionError("Choose a date (YYYY-MM-DD).") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _qualified(condition: dict[str, Any]) -> Compiled:
    """Became marketing-qualified (or later): ever, in the last N days, before or after a day
    (UTC). `qualified_at` is set once, the first time a contact reaches the stage."""
    when = condition.get("when")
    at = S.qualified_at
    candidates: tuple[Callable[[datetime, datetime], Select[Any]], ...] = ()
    if when == "ever":
        test = at.is_not(None)
    elif when == "within_last_days":
        days = _days(condition.get("days"))
        since = bindparam(f"scoring_qualified_since_{days}", type_=UTCDateTime,
                          callable_=lambda: utcnow() - timedelta(days=days))
        test = at >= since

        def leaving(t0: datetime, t1: datetime) -> Select[Any]:
            return select(S.contact_id).where(at >= t0 - timedelta(days=days),
                                              at < t1 - timedelta(days=days))
        candidates = (leaving,)
    elif when == "before":
        test = at < _midnight(condition.get("date"))
    elif when == "after":
        test = at >= _midnight(condition.get("date")) + timedelta(days=1)
    else:
        raise ConditionError("Choose when: at any time, in the last … days, before or after "
                             "a date.")
    return Compiled(exists(select(S.contact_id).where(S.contact_id == C.id, test)),
                    events=EVENTS, candidates=candidates)


def _shown(value: Any) -> str:
    if value is None or value == "":
        return "…"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def describe_score(condition: dict[str, Any]) -> str:
    """"Engagement score is at least 50"."""
    which = WHICH.get(str(condition.get("which")), "A")
    return f"{which} score {OPS.get(str(condition.get('op')), 'is …')} " \
           f"{_shown(condition.get('value'))}"


def describe_qualified(condition: dict[str, Any]) -> str:
    """"Became marketing-qualified in the last 30 days"."""
    when = condition.get("when")
    head = "Became marketing-qualified"
    if when == "within_last_days":
        days = _shown(condition.get("days"))
        return f"{head} in the last {'day' if days == '1' else days + ' days'}"
    if when in ("before", "after"):
        return f"{head} {when} {_shown(condition.get('date'))}"
    return f"{head} at any time" if when == "ever" else f"{head} …"


def kinds() -> list[ConditionKind]:
    """The scoring plugin's segment condition kinds (its hook returns them)."""
    return [
        ConditionKind("score", "Lead score", _score, describe_score, [
            ("which", "Score", "text", list(WHICH.items())),
            ("op", "Test", "text", list(OPS.items())),
            ("value", "Value", "number", [])]),
        ConditionKind("score_qualified", "Marketing-qualified", _qualified, describe_qualified, [
            ("when", "Became qualified", "text", list(WHEN.items())),
            ("days", "Days", "number", []),
            ("date", "Date", "date", [])]),
    ]
