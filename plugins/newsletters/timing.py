"""When each recipient's copy is due: all at once, at a local hour in each recipient's time zone,
or at the hour each one usually reads their email.

- Local time ("9:00 in each recipient's time zone"): the first 9:00 in their zone at or after
  the campaign's start, so over the next 24 hours every zone gets it at its own 9:00. A zone
  that changes its clocks that day is handled by `zoneinfo` (the wall-clock time is kept).
- Best time (send-time optimisation): the local hour at which the contact opened or clicked
  most often (people only - machine opens never set `opened_at`) over the last 90 days, with
  at least `MIN_HISTORY` such moments; sent at the first such hour inside the editor's window
  from the start. Others get the campaign's start time.

Time zones come from `engine.contacts.timezones.zone_of` (the contact's field, else the
browser's, else their country's, else the site's). Due times are written back grouped by
value, a few statements however many recipients there are.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update

from engine.contacts import timezones
from engine.contacts.models import Contact
from engine.db import db
from engine.mail.models import MailSend
from plugins.newsletters.errors import CampaignError
from plugins.newsletters.models import Recipient

HISTORY = timedelta(days=90)
MIN_HISTORY = 3  # engagements needed before a contact's own hour is trusted
CHUNK = 5_000  # recipients read or written per statement


def parse_local_time(text: str) -> time:
    try:
        hours, minutes = (int(part) for part in (text or "").strip().split(":"))
        return time(hours, minutes)
    except (TypeError, ValueError):
        raise CampaignError("Give the local time as HH:MM, for example 09:00.") from None


def next_local(start: datetime, at: time, zone: ZoneInfo) -> datetime:
    """The first moment at or after `start` when the clock in `zone` shows `at`. Compared in
    UTC: on the night clocks go back, a wall-clock time comes twice (`fold` 0, then 1), and
    the second may be the next one."""
    day = start.astimezone(zone).date()
    for date_ in (day, day + timedelta(days=1)):
        for fold in (0, 1):
            moment = datetime.combine(date_, at, tzinfo=zone).replace(fold=fold) \
                .astimezone(timezones.UTC)
            if moment >= start:
                return moment
    raise AssertionError("unreachable: a wall-clock time comes round within two days")


def _recipients(campaign_id: int) -> list[tuple[int, Any, str]]:
    """(contact id, custom fields, country) of every recipient, for their zones."""
    return list(db.session.execute(
        select(Contact.id, Contact.custom, Contact.country)
        .join(Recipient, Recipient.contact_id == Contact.id)
        .where(Recipient.campaign_id == campaign_id)
        .execution_options(yield_per=CHUNK)))


class _Person:
    """What `zone_of` reads, without loading a whole contact."""

    __slots__ = ("custom", "country")

    def __init__(self, custom: Any, country: str) -> None:
        self.custom, self.country = custom or {}, country or ""


def _zones(rows: list[tuple[int, Any, str]]) -> dict[int, ZoneInfo]:
    site = timezones.site_zone()
    return {cid: timezones.zone_of(_Person(custom, country), site)
            for cid, custom, country in rows}


def local_due(campaign_id: int, start: datetime, at: time) -> dict[datetime, list[int]]:
    """Contact ids by due time, for "at `at` in each recipient's time zone"."""
    by_due: dict[datetime, list[int]] = defaultdict(list)
    cache: dict[ZoneInfo, datetime] = {}
    for cid, zone in _zones(_recipients(campaign_id)).items():
        if zone not in cache:
            cache[zone] = next_local(start, at, zone)
        by_due[cache[zone]].append(cid)
    return by_due


def usual_hours(campaign_id: int, now: datetime,
                zones: dict[int, ZoneInfo]) -> dict[int, int]:
    """Each recipient's usual local hour of opening or clicking (last 90 days), for those
    with enough history. Ties go to the earlier hour."""
    since = now - HISTORY
    hours: dict[int, Counter[int]] = defaultdict(Counter)
    rows = db.session.execute(
        select(MailSend.contact_id, MailSend.opened_at, MailSend.clicked_at)
        .join(Recipient, Recipient.contact_id == MailSend.contact_id)
        .where(Recipient.campaign_id == campaign_id,
               or_(MailSend.opened_at >= since, MailSend.clicked_at >= since))
        .execution_options(yield_per=CHUNK))
    for cid, opened, clicked in rows:
        zone = zones.get(cid, timezones.UTC)
        for moment in {m for m in (opened, clicked) if m is not None and m >= since}:
            hours[cid][moment.astimezone(zone).hour] += 1
    return {cid: min(counts, key=lambda h: (-counts[h], h))
            for cid, counts in hours.items() if sum(counts.values()) >= MIN_HISTORY}


def best_due(campaign_id: int, start: datetime, window: timedelta
             ) -> tuple[dict[datetime, list[int]], set[int]]:
    """Contact ids by due time for best-time sending, and which of them were optimised."""
    zones = _zones(_recipients(campaign_id))
    usual = usual_hours(campaign_id, start, zones)
    by_due: dict[datetime, list[int]] = defaultdict(list)
    optimised: set[int] = set()
    for cid, zone in zones.items():
        hour = usual.get(cid)
        due = next_local(start, time(hour), zone) if hour is not None else start
        if hour is not None and due - start < window:
            optimised.add(cid)
        else:
            due = start
        by_due[due].append(cid)
    return by_due, optimised


def write_due(campaign_id: int, by_due: dict[datetime, list[int]],
              optimised: set[int] | None = None) -> None:
    """Store due times (inside `write()`), one statement per (due time, chunk)."""
    optimised = optimised or set()
    table = Recipient.__table__
    for due, ids in sorted(by_due.items()):
        for flag in (True, False):
            chosen = sorted(i for i in ids if (i in optimised) is flag)
            for start in range(0, len(chosen), CHUNK):
                db.session.execute(update(table).where(
                    table.c.campaign_id == campaign_id,
                    table.c.contact_id.in_(chosen[start:start + CHUNK])).values(
                    due_at=due, optimised=flag))
