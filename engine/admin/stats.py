"""Read-only figures for the dashboard, computed with a few aggregate queries.

The tables belong to the contacts and forms concerns; the dashboard only counts their rows, and
counts like with like: conversion compares browsers that were tracked seeing a form with those
of them that submitted it (tracking misses visitors who refuse it; submissions miss no one),
pages are counted by path (no host, query or secret), and merged or erased contacts are not new
contacts.
Counting a million contacts takes a second or two, so the figures are kept in Redis
(`cached`), refreshed by a periodic job (`admin.dashboard_figures`, see hooks.py): the dashboard
answers fast however large the site, and is at most a minute behind. Without a worker, the first
view after the figures expire computes them.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

import redis
from sqlalchemy import and_, case, func, select

from engine.contacts.models import Contact
from engine.db import db, utcnow
from engine.events.models import Activity
from engine.forms.models import Form, Submission
from engine.jobs import connection
from engine.web import private_paths

PERIOD = timedelta(days=30)
CACHE_SECONDS = 120  # outlives the job's interval, so a running site never computes in a request
FIGURES: dict[str, Callable[[], Any]] = {}  # filled below: name -> compute, JSON-able


@dataclass(frozen=True)
class FormFigures:
    slug: str
    title: str
    submissions: int  # every submission, tracked browser or not
    views: int  # tracked browsers that saw the form
    converted: int = 0  # of those browsers, the ones that submitted it

    @property
    def conversion(self) -> float | None:
        """The share of the tracked browsers that saw the form and submitted it (never more
        than all of them), when any was tracked."""
        return self.converted / self.views if self.views else None


LIVE_CONTACT = Contact.status.notin_(("merged", "erased"))


def new_contacts_since(since: datetime) -> int:
    """Live contacts created since `since`: an index-only range scan of
    `ix_contacts_created_at` (created_at, status), so its cost follows the new contacts, not
    the million old ones."""
    return db.session.scalar(select(func.count()).select_from(Contact).where(
        Contact.created_at >= since, LIVE_CONTACT)) or 0


def contacts_summary() -> dict[str, int]:
    total = db.session.scalar(select(func.count()).select_from(Contact).where(LIVE_CONTACT)) or 0
    return {"total": total, "new_this_week": new_contacts_since(utcnow() - timedelta(days=7))}


def new_contacts_by_day(days: int = 30) -> list[tuple[str, int]]:
    """New contacts per day for the chart, oldest first, days without any included as 0."""
    today = utcnow().date()
    start = today - timedelta(days=days - 1)
    day = func.date(Contact.created_at)
    rows = db.session.execute(select(day, func.count()).where(
        Contact.created_at >= utcnow() - timedelta(days=days), LIVE_CONTACT).group_by(day)).all()
    counts = {str(d)[:10]: n for d, n in rows}
    return [((start + timedelta(days=i)).strftime("%d %b"),
             counts.get((start + timedelta(days=i)).isoformat(), 0)) for i in range(days)]


def form_figures() -> list[FormFigures]:
    since = utcnow() - PERIOD
    submissions = dict(db.session.execute(
        select(Submission.form_slug, func.count()).where(Submission.created_at >= since)
        .group_by(Submission.form_slug)).all())
    viewers = select(Activity.properties["form"].as_string().label("form"),
                     Activity.visitor_id.label("visitor")).where(
        Activity.type == "form_view", Activity.occurred_at >= since,
        Activity.visitor_id.is_not(None)).distinct().subquery()
    views = dict(db.session.execute(
        select(viewers.c.form, func.count()).group_by(viewers.c.form)).all())
    converted = dict(db.session.execute(
        select(viewers.c.form, func.count(func.distinct(viewers.c.visitor)))
        .select_from(viewers)
        .join(Submission, and_(Submission.visitor_id == viewers.c.visitor,
                               Submission.form_slug == viewers.c.form))
        .where(Submission.created_at >= since).group_by(viewers.c.form)).all())
    forms = db.session.execute(select(Form.slug, Form.title).order_by(Form.title)).all()
    return [FormFigures(slug, title, submissions.get(slug, 0), views.get(slug, 0),
                        converted.get(slug, 0)) for slug, title in forms]


def _path_of(url: Any) -> Any:
    """The path of a stored `scheme://host/path?query` URL, in SQL (grouped by the database:
    one page's views under many hosts and query strings are one page)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.split_part(func.regexp_replace(url, "^[^:/]+://[^/]*", ""), "?", 1)
    rest = func.substr(url, func.instr(url, "://") + 3)
    path = func.substr(rest, func.instr(rest, "/"))
    return case((func.instr(path, "?") > 0, func.substr(path, 1, func.instr(path, "?") - 1)),
                else_=path)


def top_pages(limit: int = 10) -> list[tuple[str, int]]:
    """The most viewed paths, readable, with any secret cut out (`engine.web.private_paths`)."""
    since = utcnow() - PERIOD
    path = _path_of(Activity.url).label("path")
    counts: Counter[str] = Counter()
    for found, n in db.session.execute(
            select(path, func.count().label("n")).where(
                Activity.type == "page_view", Activity.occurred_at >= since)
            .group_by(path).order_by(func.count().desc(), path).limit(limit)).all():
        counts[private_paths.redact(unquote(found or "/"))] += n
    return counts.most_common(limit)


FIGURES.update(contacts=contacts_summary, by_day=new_contacts_by_day, pages=top_pages,
               forms=lambda: [asdict(f) for f in form_figures()])


def _store(name: str, value: Any) -> None:
    try:
        connection().set(f"magnet:admin:stats:{name}", json.dumps(value), ex=CACHE_SECONDS)
    except (redis.RedisError, OSError):
        pass


def cached(name: str) -> Any:
    """A figure from Redis, computed (and stored) when missing or when Redis is down."""
    try:
        hit = connection().get(f"magnet:admin:stats:{name}")
    except (redis.RedisError, OSError):
        return FIGURES[name]()
    if hit is not None:
        return json.loads(hit)
    value = FIGURES[name]()
    _store(name, value)
    return value


def refresh() -> None:
    """Recompute every figure (the periodic job)."""
    for name, compute in FIGURES.items():
        _store(name, compute())


def dashboard_figures() -> dict[str, Any]:
    """Everything the dashboard shows, at most a couple of minutes old."""
    return {
        "contacts": cached("contacts"),
        "by_day": [tuple(p) for p in cached("by_day")],
        "forms": cached_form_figures(),
        "pages": [tuple(p) for p in cached("pages")],
    }


def cached_form_figures() -> list[FormFigures]:
    return [FormFigures(**f) for f in cached("forms")]
