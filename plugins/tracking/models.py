"""The tracking plugin's own tables: the ids of stored events, visits (sessions) and daily
roll-ups for the Traffic page. (A contact's first and last touch are the core's, on the contact:
`engine.contacts.touches`.)

The events themselves live in the core's activity timeline; these tables hold only what the
timeline cannot answer quickly. The roll-ups are counters updated by every ingest batch, so the
Traffic page reads a few hundred rows whatever the number of events.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import UTCDateTime, db, utcnow


class StoredEvent(db.Model):
    """The id of every event stored (ids are given at the beacon, see `clean.event_id`).

    Storing an event first inserts its id here with `ON CONFLICT DO NOTHING`, in the batch's
    transaction: an event that arrives a second time (a hand-over whose RPUSH reached Redis
    after its client timed out, and which the database fallback stored as well; a drain that
    crashed after its commit) inserts nothing and is skipped. Ids are kept as long as
    anonymous events (the retention setting) and pruned with them.
    """

    __tablename__ = "tracking_stored_events"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)


class Visit(db.Model):
    """A session: one visitor's events with no gap longer than the idle timeout."""

    __tablename__ = "tracking_visits"
    __table_args__ = (Index("ix_tracking_visits_visitor_last", "visitor_id", "last_seen_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    visitor_id: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    landing_url: Mapped[str] = mapped_column(String(2000), default="")
    referrer: Mapped[str] = mapped_column(String(2000), default="")
    source: Mapped[str] = mapped_column(String(200), default="")
    medium: Mapped[str] = mapped_column(String(100), default="")
    campaign: Mapped[str] = mapped_column(String(200), default="")
    device: Mapped[str] = mapped_column(String(20), default="")
    browser: Mapped[str] = mapped_column(String(60), default="")
    # The browser's IANA zone as its latest page view reported it ("" when unknown): kept on
    # the visit, so a page view in the zone the visit already holds costs no write, and
    # carried to the contact (`engine.contacts.timezones.BROWSER_FIELD`) when it changes.
    time_zone: Mapped[str] = mapped_column(String(64), default="", server_default="")
    page_views: Mapped[int] = mapped_column(Integer, default=0)
    events: Mapped[int] = mapped_column(Integer, default=0)


class DailyTotals(db.Model):
    __tablename__ = "tracking_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    page_views: Mapped[int] = mapped_column(Integer, default=0)
    visits: Mapped[int] = mapped_column(Integer, default=0)
    visitors: Mapped[int] = mapped_column(Integer, default=0)
    contacts: Mapped[int] = mapped_column(Integer, default=0)
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    downloads: Mapped[int] = mapped_column(Integer, default=0)
    form_views: Mapped[int] = mapped_column(Integer, default=0)


class MonthlyActives(db.Model):
    """Monthly active visitors and contacts (distinct per calendar month)."""

    __tablename__ = "tracking_monthly"

    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM
    visitors: Mapped[int] = mapped_column(Integer, default=0)
    contacts: Mapped[int] = mapped_column(Integer, default=0)


class Seen(db.Model):
    """Who was active in a day or month (`period` is YYYY-MM-DD or YYYY-MM; `kind` is `v`isitor
    or `c`ontact): inserting ignores repeats, so the rows inserted are the new actives to count.
    Day rows also answer "unique visitors over any period" exactly."""

    __tablename__ = "tracking_seen"

    period: Mapped[str] = mapped_column(String(10), primary_key=True)
    kind: Mapped[str] = mapped_column(String(1), primary_key=True)
    subject: Mapped[str] = mapped_column(String(32), primary_key=True)


class DailyPage(db.Model):
    __tablename__ = "tracking_daily_pages"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    path: Mapped[str] = mapped_column(String(500), primary_key=True)
    views: Mapped[int] = mapped_column(Integer, default=0)


class DailySource(db.Model):
    """Visits per day by referrer host (`kind` = referrer) or by UTM campaign (`kind` = campaign,
    `name` = "source / medium / campaign")."""

    __tablename__ = "tracking_daily_sources"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    name: Mapped[str] = mapped_column(String(400), primary_key=True)
    visits: Mapped[int] = mapped_column(Integer, default=0)
