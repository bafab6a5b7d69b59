"""Events scored as one worker delivers them: thirty rules, a backlog of page views, clicks and
form submissions, with the scoring plugin on and, as the baseline, off.

For each case a fresh instance (SQLite, embedded Redis, `magnet db upgrade`) gets `--contacts`
people with a little history (countries, titles, stages, tags, a list: what the fit rules test;
`bench/segment_events.py` makes them) and the thirty rules of `RULES` (twenty engagement rules on
page views, clicks and forms, with path, link and form filters and caps; ten fit rules on fields,
tags, a list, a stage and past page views), saved through the plugin's service and recalculated
by running the outbox. The setup's own events are delivered (untimed). Then `--events` events
(six in ten page views, a quarter clicks, the rest form submissions, over the contacts at
random, each a few seconds after the last) are recorded in transactions of 1,000, and one
process drains them with `engine.events.delivery.deliver_next` in a loop, as a worker's delivery
job does, each call timed: events/s over the drain, and each batch's time divided by its events
(median, p99). The `score_changed` events the plugin records are delivered too, and counted
apart. The baseline is the same, with the scoring plugin disabled: every other plugin's
`on_event` (segments, tracking) still runs. Targets with scoring on: ≥ 2,000 events/s, a median
of ≤ 2 ms per event.
"""
from __future__ import annotations

import random
import statistics
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, text

from bench.segment_events import PATHS, make_contacts
from bench.site import EngineSite
from engine import create_app, events
from engine.db import db, utcnow, write
from engine.events.delivery import deliver_next, pending
from engine.events.models import Activity
from engine.jobs import outbox
from plugins.scoring import service

RECORD_BATCH = 1_000
FOLLOW_UPS = ("score_changed", "stage_changed", "segment_entered", "segment_left",
              "field_changed")
ALL_PATHS = [*PATHS, "/features", "/customers", "/integrations", "/security", "/docs/start",
             "/careers", "/legal/terms", "/changelog", "/blog/small-teams"]
LINKS = [("https://www.example.com/pricing", "See pricing"), ("/files/guide.pdf?download", "Get"),
         ("https://www.example.com/demo", "Book a demo"), ("https://twitter.com/x", "Follow")]
FORMS = ["demo", "ebook", "newsletter", "contact", "webinar"]


def _page(name: str, points: int, op: str, path: str, cap: int | None = None,
          period: str = "") -> dict[str, Any]:
    return _event(name, points, "page_view", [("path", op, path)], cap, period)


def _event(name: str, points: int, event: str, tests: list[tuple[str, str, str]],
           cap: int | None = None, period: str = "") -> dict[str, Any]:
    return {"kind": "engagement", "name": name, "points": points, "event": event,
            "filters": [{"prop": p, "op": op, "value": v} for p, op, v in tests],
            "cap_count": cap, "cap_period": period}


def _fit(name: str, points: int, *conditions: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "fit", "name": name, "points": points,
            "definition": {"match": "all", "groups": [{"match": "all",
                                                        "conditions": list(conditions)}]}}


def _field(name: str, op: str, value: str) -> dict[str, Any]:
    return {"kind": "field", "field": name, "op": op, "value": value}


RULES = [
    _page("Pricing page", 10, "equals", "/pricing", 3, "day"),
    _page("Demo page", 15, "equals", "/demo", 1, "week"),
    _page("Blog", 2, "starts_with", "/blog", 5, "day"),
    _page("Features", 3, "equals", "/features", 2, "day"),
    _page("Home", 1, "equals", "/", 3, "day"),
    _page("Customer stories", 4, "equals", "/customers", 1, "day"),
    _page("Integrations", 3, "equals", "/integrations", 2, "week"),
    _page("Security", 5, "equals", "/security", 1, "month"),
    _page("Docs", 2, "starts_with", "/docs", 10, "week"),
    _page("Job seeker", -10, "starts_with", "/careers", 1, "ever"),
    _page("Legal pages", -1, "starts_with", "/legal", 1, "day"),
    _page("Changelog", 1, "equals", "/changelog"),
    _event("Downloads", 5, "click", [("href", "contains", "download")], 3, "week"),
    _event("Demo button", 20, "click", [("label", "equals", "Book a demo")], 1, "month"),
    _event("Pricing link", 5, "click", [("href", "contains", "/pricing")], 2, "day"),
    _event("Any click", 1, "click", [], 10, "day"),
    _event("Demo request", 30, "form_submitted", [("form", "equals", "demo")], 1, "ever"),
    _event("Ebook", 10, "form_submitted", [("form", "equals", "ebook")], 3, "month"),
    _event("Newsletter sign-up", 5, "form_submitted", [("form", "equals", "newsletter")], 1,
           "ever"),
    _event("Contact form", 15, "form_submitted", [("form", "equals", "contact")]),
    _fit("UK", 10, _field("country", "equals", "GB")),
    _fit("US", 8, _field("country", "equals", "US")),
    _fit("France", 5, _field("country", "equals", "FR")),
    _fit("Directors", 15, _field("job_title", "contains", "director")),
    _fit("Heads of", 10, _field("job_title", "starts_with", "head")),
    _fit("Engineers", -5, _field("job_title", "contains", "engineer")),
    _fit("Webinar guests", 5, {"kind": "tag", "tag": "webinar", "op": "has"}),
    _fit("Customers already", -20, {"kind": "stage", "stages": ["customer"], "op": "is"}),
    _fit("Newsletter readers", 3, {"kind": "list", "list": "newsletter", "status": "subscribed",
                                   "op": "is"}),
    _fit("Pricing three times", 10, {"kind": "activity", "event": "page_view", "prop": "path",
                                     "value": "/pricing", "op": "at_least", "count": 3,
                                     "days": 30}),
]


def rule_counts() -> dict[str, int]:
    kinds = [rule["kind"] for rule in RULES]
    return {kind: kinds.count(kind) for kind in sorted(set(kinds))}


def backlog(contact_ids: list[int], count: int) -> int:
    """Record `count` events over the contacts, in transactions of `RECORD_BATCH`; returns the
    id of the last event before them."""
    draw = random.Random(7)
    mark = db.session.scalar(select(func.max(Activity.id))) or 0
    start = utcnow() - timedelta(seconds=5 * count)
    for low in range(0, count, RECORD_BATCH):
        rows = []
        for k in range(low, min(count, low + RECORD_BATCH)):
            contact, at, kind = draw.choice(contact_ids), start + timedelta(seconds=5 * k), \
                draw.random()
            path = draw.choice(ALL_PATHS)
            seen = {"path": path, "title": "Page", "referrer": ""}
            if kind < 0.6:
                rows.append({"type": "page_view", "contact_id": contact, "occurred_at": at,
                             "url": f"https://www.example.com{path}", "properties": seen})
            elif kind < 0.85:
                href, label = draw.choice(LINKS)
                rows.append({"type": "click", "contact_id": contact, "occurred_at": at,
                             "url": f"https://www.example.com{path}",
                             "properties": {**seen, "href": href, "label": label}})
            else:
                rows.append({"type": "form_submitted", "contact_id": contact, "occurred_at": at,
                             "properties": {"form": draw.choice(FORMS), "submission_id": k}})
        with write():
            events.record_many(rows)
    db.session.rollback()
    return mark


def drain() -> list[tuple[float, int]]:
    """Deliver until nothing is queued, as a delivery job does; (seconds, events) per call."""
    calls, start = [], 0
    while True:
        began = time.perf_counter()
        delivered, start = deliver_next(start)
        if not delivered:
            return calls
        calls.append((time.perf_counter() - began, delivered))


def figures(calls: list[tuple[float, int]]) -> dict[str, Any]:
    if not calls:
        return {"delivered": 0}
    delivered, busy = sum(n for _, n in calls), sum(s for s, _ in calls)
    per_event = sorted(s / n * 1000 for s, n in calls)
    return {"delivered": delivered, "seconds": round(busy, 3),
            "events_per_s": round(delivered / busy, 1), "deliveries": len(calls),
            "median_batch": statistics.median(n for _, n in calls),
            "per_event_ms_median": round(statistics.median(per_event), 3),
            "per_event_ms_p99": round(per_event[min(len(per_event) - 1,
                                                    round(0.99 * len(per_event)))], 3),
            "per_event_ms_mean": round(busy / delivered * 1000, 3)}


def scored() -> dict[str, int]:
    """What the plugin stored: awards, score rows, fit matches."""
    return {table: db.session.scalar(text(f"SELECT count(*) FROM {table}")) or 0
            for table in ("scoring_awards", "scoring_scores", "scoring_fit_matches")}


def run_case(scoring: bool, contact_count: int, count: int) -> dict[str, Any]:
    """A fresh site with the rules and contacts, settled; then the backlog, drained."""
    with EngineSite(workers=0, content=False) as site:
        app = create_app({"REDIS_URL": site.redis.url}, instance_path=site.instance)
        try:
            with app.app_context():
                manager = app.extensions["magnet.plugins"]
                manager.set_enabled("tracking", True)
                manager.set_enabled("scoring", True)
                manager.refresh(force=True)
                people = [contact_id for contact_id, _, _ in
                          make_contacts(contact_count, "person", history=True)]
                for rule in RULES:
                    service.save_rule(rule)
                while outbox.run_batch("default"):
                    pass  # the rules' recalculations
                drain()  # the setup's events
                manager.set_enabled("scoring", scoring)
                manager.refresh(force=True)
                before = scored()
                mark = backlog(people, count)
                waiting = pending()
                print(f"  {count:,} events recorded ({waiting:,} queued); draining...",
                      flush=True)
                measured = figures(drain())
                after = scored()
                follow_ups = db.session.scalar(select(func.count()).where(
                    Activity.id > mark, Activity.type.in_(FOLLOW_UPS))) or 0
                db.session.rollback()
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
    stream = measured.get("delivered", 0) - follow_ups
    if measured.get("delivered"):
        measured["stream_events_per_s"] = round(
            measured["events_per_s"] * stream / measured["delivered"], 1)
    change = {table: after[table] - before[table] for table in after}
    return {"scoring": scoring, "stream_events": stream, "follow_up_events": follow_ups,
            **measured, "stored_by_scoring": change,
            "scored": f"stored by scoring during the drain: {change}"}
