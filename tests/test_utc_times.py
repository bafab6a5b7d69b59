"""Times are stored in SQLite as SQLAlchemy's own text, in UTC, and read back aware: the one-step
processors of `UTCDateTime` give exactly what its two steps (`process_bind_param`, then
SQLAlchemy's SQLite format) give, so rows written before and after read and sort the same."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select
from sqlalchemy.dialects import sqlite

from engine.db import UTCDateTime

DIALECT = sqlite.dialect()
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                         timezone(timedelta(hours=-8))])


def two_steps(value: datetime) -> str:
    """What SQLAlchemy makes of the type without the one-step processor."""
    return sqlite.DATETIME().bind_processor(DIALECT)(UTCDateTime().process_bind_param(value,
                                                                                    DIALECT))


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)), ZONES)
def test_a_time_is_bound_as_the_two_steps_bind_it(moment, zone):
    value = moment.replace(tzinfo=zone)
    assert UTCDateTime().bind_processor(DIALECT)(value) == two_steps(value)


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().bind_processor(DIALECT)(datetime(2026, 1, 1))


def test_times_read_back_aware_in_utc(tmp_path):
    table = Table("times", MetaData(), Column("id", Integer, primary_key=True),
                  Column("at", UTCDateTime))
    engine = create_engine(f"sqlite:///{tmp_path / 'times.db'}")
    table.metadata.create_all(engine)
    berlin = datetime(2026, 3, 29, 3, 30, tzinfo=timezone(timedelta(hours=2)))
    with engine.begin() as connection:
        connection.execute(insert(table), [{"id": 1, "at": berlin}, {"id": 2, "at": None},
                                           {"id": 3, "at": datetime(2026, 1, 1, tzinfo=UTC)}])
        stored = connection.exec_driver_sql("SELECT at FROM times ORDER BY id").scalars().all()
        read = connection.execute(select(table.c.at).order_by(table.c.id)).scalars().all()
    assert stored == ["2026-03-29 01:30:00.000000", None, "2026-01-01 00:00:00.000000"]
    assert read == [berlin, None, datetime(2026, 1, 1, tzinfo=UTC)]
    assert read[0].tzinfo is UTC
