"""Time in the contact's own zone: sending hours, waits until a date, a weekday or a date field,
and the yearly moments of date-field triggers.

Everything here is a pure function of a UTC moment, a zone and the step or rules, so the
runner stays simple and the tests can try any moment of any zone (DST changes included).
Local times that do not exist (the hour skipped when clocks go forward) are moved on by the
length of the gap (02:30 becomes 03:30); those that exist twice take the first.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

TEST_WAIT = timedelta(minutes=1)  # test mode: every wait lasts at most this long


def local(day: date, hour: int, zone: ZoneInfo, minute: int = 0) -> datetime:
    """The UTC moment of `day` at `hour:minute` on the clocks of `zone`."""
    # fold=0 reads a wall time inside a gap with the offset from before it: 02:30 on the night
    # clocks go from 02:00 to 03:00 is the moment the clocks show 03:30.
    return datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)


def _allowed_hours(rules: dict[str, Any]) -> list[tuple[int, int]]:
    """The day's sending hours as [start, end) intervals of hours."""
    start, end = rules.get("quiet_from"), rules.get("quiet_to")
    if start is None or end is None:
        return [(0, 24)]
    if start < end:  # quiet in the middle of the day
        return [(0, start), (end, 24)]
    return [(end, start)]  # quiet over midnight (the usual case: 21 -> 8)


def sending_time(moment: datetime, zone: ZoneInfo, rules: dict[str, Any]) -> datetime:
    """The first moment at or after `moment` inside the workflow's sending hours and days, on
    the contact's clocks; `moment` itself when it is inside them."""
    days = set(rules.get("days") or range(7))
    hours = _allowed_hours(rules)
    if len(days) == 7 and hours == [(0, 24)]:
        return moment
    here = moment.astimezone(zone)
    for offset in range(8):
        day = here.date() + timedelta(days=offset)
        if day.weekday() not in days:
            continue
        for start, end in hours:
            opens = local(day, start, zone) if start < 24 else None
            closes = local(day + timedelta(days=1), 0, zone) if end == 24 else local(day, end,
                                                                                      zone)
            if opens is None or closes <= moment:
                continue
            return max(opens, moment)
    return moment  # no day allowed at all cannot be saved; never hold anyone forever


def wait_end(step: dict[str, Any], now: datetime, zone: ZoneInfo, custom: dict[str, Any],
             test: bool = False) -> datetime | None:
    """When a wait step started `now` is over (None: a date field that is empty or not a date
    - the wait is skipped). Waits on a condition end at their time-out."""
    mode = step.get("mode", "duration")
    if mode in ("duration", "until_condition"):
        minutes = step["minutes"] if mode == "duration" else step["timeout_minutes"]
        end = now + timedelta(minutes=int(minutes))
    elif mode == "until_date":
        end = local(date.fromisoformat(step["date"]), int(step["hour"]), zone)
    elif mode == "until_weekday":
        end = next_weekday(now, zone, step["weekdays"], int(step["hour"]))
    else:
        day = as_date(custom.get(step["field"]))
        if day is None:
            return None
        end = local(day + timedelta(days=int(step.get("offset_days", 0))),
                    int(step["hour"]), zone)
    if test:
        end = min(end, now + TEST_WAIT)
    return end


def next_weekday(now: datetime, zone: ZoneInfo, weekdays: list[int], hour: int) -> datetime:
    """The next of these weekdays at `hour` on the contact's clocks, after `now`."""
    today = now.astimezone(zone).date()
    for offset in range(8):
        day = today + timedelta(days=offset)
        if day.weekday() in weekdays:
            moment = local(day, hour, zone)
            if moment > now:
                return moment
    return now


def as_date(value: Any) -> date | None:
    """A date from a custom field's value ("1990-05-17", or a date-time's date part)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value or "")[:10])
    except ValueError:
        return None


def _in_year(day: date, year: int) -> date:
    try:
        return day.replace(year=year)
    except ValueError:  # 29 February in a year without one: the 28th
        return day.replace(year=year, day=28)


def next_date_moment(value: Any, trigger: dict[str, Any], after: datetime,
                     zone: ZoneInfo) -> datetime | None:
    """The next moment after `after` at which a date-field trigger fires for a contact whose
    field holds `value`: the date (its anniversary each year when `yearly`), moved by
    `offset_days`, at `hour` on the contact's clocks. None when it never will again."""
    day = as_date(value)
    if day is None:
        return None
    offset, hour = timedelta(days=int(trigger.get("offset_days", 0))), int(trigger["hour"])
    if not trigger.get("yearly", True):
        moment = local(day + offset, hour, zone)
        return moment if moment > after else None
    year = after.astimezone(zone).year
    for candidate_year in (year - 1, year, year + 1, year + 2):
        moment = local(_in_year(day, candidate_year) + offset, hour, zone)
        if moment > after:
            return moment
    return None
