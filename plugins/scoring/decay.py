"""Engagement's half-life decay, exact at any moment, and the same arithmetic in SQL.

An award of p points at time tᵢ is worth p·2^(−(t − tᵢ)/h) at time t. Each award stores
`weight = p·2^((tᵢ − epoch)/h)`; a contact's `acc = Σ weight`; then their engagement at t is
`acc·2^(−(t − epoch)/h)` exactly, and "engagement ≥ N" is `acc ≥ N·2^((t − epoch)/h)`, a bound
an index on `acc` serves. Weights grow by 2 every half-life, so the epoch is moved forward
(`needs_rebase`) long before a float could lose precision: after 16 half-lives weights are at
most 65,536 times the points, far from any limit.

The SQL forms (`unix_seconds`, `power2`, `bucket_sql`) compute the same numbers in the
database for recalculations, on SQLite and PostgreSQL alike.
"""
from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Float, String, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

DAY = 86_400.0
REBASE_AFTER_HALF_LIVES = 16
# Below 2^-1000 a weight is 0 for every purpose (and PostgreSQL raises on underflow rather
# than giving 0): points from an event dated decades back, with a short half-life.
UNDERFLOW = -1000


def seconds(moment: datetime) -> float:
    return moment.astimezone(UTC).timestamp()


def weight(points: float, at: datetime, epoch: float, half_life_days: float) -> float:
    """The stored weight of `points` earned at `at` (epoch in Unix seconds)."""
    exponent = (seconds(at) - epoch) / (half_life_days * DAY)
    return 0.0 if exponent < UNDERFLOW else points * 2.0 ** exponent


def factor(now: datetime, epoch: float, half_life_days: float) -> float:
    """What turns an acc into engagement at `now`: 2^(−(now − epoch)/h)."""
    return 2.0 ** (-(seconds(now) - epoch) / (half_life_days * DAY))


def value(acc: float, now: datetime, epoch: float, half_life_days: float) -> float:
    """Engagement at `now` of a contact whose accumulator is `acc`."""
    return acc * factor(now, epoch, half_life_days)


def decayed(points: float, at: datetime, now: datetime, half_life_days: float) -> float:
    """What `points` earned at `at` are worth at `now` (the explanation's per-award figure)."""
    return points * 2.0 ** (-(seconds(now) - seconds(at)) / (half_life_days * DAY))


def acc_threshold(score: float, now: datetime, epoch: float, half_life_days: float) -> float:
    """The acc at or above which engagement at `now` is at least `score`."""
    return score / factor(now, epoch, half_life_days)


def shown(exact: float) -> int:
    """A score as people see it, to the nearest whole number (halves up). Every threshold
    (stages, segment conditions, filters) compares this, so a score shown as 50 has reached 50:
    `shown(x) >= n` exactly when `x >= n - 0.5` (`reaches`)."""
    return math.floor(exact + 0.5)


def reaches(exact: float, threshold: float) -> bool:
    """Whether a score, as shown, is at least `threshold`."""
    return exact >= threshold - 0.5


def needs_rebase(now: datetime, epoch: float, half_life_days: float) -> bool:
    return seconds(now) - epoch > REBASE_AFTER_HALF_LIVES * half_life_days * DAY


# --- cap periods -------------------------------------------------------------------------------

def bucket(at: datetime, period: str) -> str:
    """The calendar period (UTC) an award at `at` counts against: a day, the week from Monday,
    a month; one bucket for "ever" and for rules without a cap."""
    moment = at.astimezone(UTC)
    if period == "day":
        return moment.strftime("%Y-%m-%d")
    if period == "week":
        return (moment - timedelta(days=moment.weekday())).strftime("%Y-%m-%d")
    if period == "month":
        return moment.strftime("%Y-%m")
    return ""


# --- the same in SQL ---------------------------------------------------------------------------

class unix_seconds(FunctionElement[float]):
    """`unix_seconds(column)`: a UTC datetime column as Unix seconds (with fractions)."""

    type = Float()
    inherit_cache = True
    name = "unix_seconds"


@compiles(unix_seconds)
def _unix_seconds_sqlite(element: unix_seconds, compiler: Any, **kw: Any) -> str:
    # Stored as naive UTC text; julianday keeps the fraction of a second that unixepoch drops.
    (column,) = element.clauses
    return f"((julianday({compiler.process(column, **kw)}) - 2440587.5) * 86400.0)"


@compiles(unix_seconds, "postgresql")
def _unix_seconds_postgresql(element: unix_seconds, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    return f"EXTRACT(EPOCH FROM {compiler.process(column, **kw)})::float8"


class power2(FunctionElement[float]):
    """`power2(x)`: 2^x as a double on both backends."""

    type = Float()
    inherit_cache = True
    name = "power2"


@compiles(power2)
def _power2_sqlite(element: power2, compiler: Any, **kw: Any) -> str:
    (exponent,) = element.clauses
    x = compiler.process(exponent, **kw)
    return f"(CASE WHEN ({x}) < {UNDERFLOW} THEN 0.0 ELSE pow(2.0, {x}) END)"


@compiles(power2, "postgresql")
def _power2_postgresql(element: power2, compiler: Any, **kw: Any) -> str:
    (exponent,) = element.clauses
    x = f"({compiler.process(exponent, **kw)})::float8"
    return f"(CASE WHEN {x} < {UNDERFLOW} THEN 0.0::float8 ELSE power(2.0::float8, {x}) END)"


class _Bucket(FunctionElement[str]):
    """A cap period of a datetime column in SQL; one subclass per period, so each compiles
    (and is cached) as its own SQL."""

    type = String()
    inherit_cache = True
    period = ""


class _DayBucket(_Bucket):
    inherit_cache = True
    name = "bucket_day"
    period = "day"


class _WeekBucket(_Bucket):
    inherit_cache = True
    name = "bucket_week"
    period = "week"


class _MonthBucket(_Bucket):
    inherit_cache = True
    name = "bucket_month"
    period = "month"


def bucket_sql(column: Any, period: str) -> Any:
    """`bucket()` in SQL: the same text for the same moment, on SQLite and PostgreSQL."""
    kinds = {"day": _DayBucket, "week": _WeekBucket, "month": _MonthBucket}
    return kinds[period](column) if period in kinds else literal("")


@compiles(_Bucket)
def _bucket_sqlite(element: _Bucket, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    column = compiler.process(column, **kw)
    if element.period == "day":
        return f"strftime('%Y-%m-%d', {column})"
    if element.period == "week":  # to the next Sunday (or stay), back six days: its Monday
        # (from the whole seconds: a modifier rounds to milliseconds, and 23:59:59.9996 on a
        # Sunday would become the next week's Monday)
        return f"date(substr({column}, 1, 19), 'weekday 0', '-6 days')"
    return f"strftime('%Y-%m', {column})"


@compiles(_Bucket, "postgresql")
def _bucket_postgresql(element: _Bucket, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    column = f"({compiler.process(column, **kw)} AT TIME ZONE 'UTC')"
    if element.period == "day":
        return f"to_char({column}, 'YYYY-MM-DD')"
    if element.period == "week":
        return f"to_char(date_trunc('week', {column}), 'YYYY-MM-DD')"
    return f"to_char({column}, 'YYYY-MM')"
