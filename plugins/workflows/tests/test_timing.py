"""Local time for waits and sending hours: zones, DST gaps, weekdays, anniversaries."""
from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from plugins.workflows import timing

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")


def utc(*parts):
    return datetime(*parts, tzinfo=UTC)


def test_a_local_hour_skipped_by_the_clocks_moves_on_by_the_gap():
    # 31 March 2030: Berlin jumps from 02:00 to 03:00; 02:30 is read as 03:30 CEST.
    assert timing.local(date(2030, 3, 31), 2, BERLIN, 30) == utc(2030, 3, 31, 1, 30)
    assert timing.local(date(2030, 3, 31), 3, BERLIN, 30) == utc(2030, 3, 31, 1, 30)
    assert timing.local(date(2030, 3, 30), 9, BERLIN) == utc(2030, 3, 30, 8, 0)
    assert timing.local(date(2030, 4, 1), 9, BERLIN) == utc(2030, 4, 1, 7, 0)


def test_sending_hours_over_midnight_and_weekdays():
    rules = {"quiet_from": 21, "quiet_to": 8, "days": [0, 1, 2, 3, 4]}
    inside = utc(2030, 6, 4, 10, 0)  # Tuesday 12:00 Berlin
    assert timing.sending_time(inside, BERLIN, rules) == inside
    late = utc(2030, 6, 4, 20, 0)  # Tuesday 22:00 Berlin -> Wednesday 08:00
    assert timing.sending_time(late, BERLIN, rules) == utc(2030, 6, 5, 6, 0)
    early = utc(2030, 6, 5, 4, 0)  # Wednesday 06:00 Berlin -> 08:00
    assert timing.sending_time(early, BERLIN, rules) == utc(2030, 6, 5, 6, 0)
    saturday = utc(2030, 6, 8, 10, 0)
    assert timing.sending_time(saturday, BERLIN, rules) == utc(2030, 6, 10, 6, 0)
    lunch = {"quiet_from": 12, "quiet_to": 14}
    assert timing.sending_time(utc(2030, 6, 4, 12, 30), ZoneInfo("UTC"), lunch) == \
        utc(2030, 6, 4, 14, 0)
    assert timing.sending_time(inside, BERLIN, {}) == inside


def test_waits_until_a_date_a_weekday_or_a_date_field():
    now = utc(2030, 6, 4, 10, 0)  # a Tuesday
    step = {"mode": "until_weekday", "weekdays": [0], "hour": 9}
    assert timing.wait_end(step, now, NEW_YORK, {}) == utc(2030, 6, 10, 13, 0)
    step = {"mode": "until_date", "date": "2030-07-01", "hour": 18}
    assert timing.wait_end(step, now, BERLIN, {}) == utc(2030, 7, 1, 16, 0)
    step = {"mode": "until_field", "field": "renewal", "offset_days": -7, "hour": 9}
    assert timing.wait_end(step, now, BERLIN, {"renewal": "2030-09-08"}) == \
        utc(2030, 9, 1, 7, 0)
    assert timing.wait_end(step, now, BERLIN, {"renewal": "soon"}) is None
    step = {"mode": "duration", "minutes": 60 * 24 * 3}
    assert timing.wait_end(step, now, BERLIN, {}, test=True) == now + timing.TEST_WAIT


def test_anniversaries_including_the_29th_of_february():
    yearly = {"hour": 9, "offset_days": -1, "yearly": True}
    after = utc(2031, 3, 1, 0, 0)
    assert timing.next_date_moment("2000-02-29", yearly, after, ZoneInfo("UTC")) == \
        utc(2032, 2, 28, 9, 0)  # 28 Feb 2031 has gone; 2032 has a 29th, the day before
    once = {"hour": 9, "offset_days": 0, "yearly": False}
    assert timing.next_date_moment("2031-05-01", once, after, BERLIN) == utc(2031, 5, 1, 7, 0)
    assert timing.next_date_moment("2030-05-01", once, after, BERLIN) is None
    assert timing.next_date_moment("", once, after, BERLIN) is None
