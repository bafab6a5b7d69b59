"""Segments kept current event by event: what one `magnet worker` delivers with twenty segments.

A fresh instance (SQLite, embedded Redis, `magnet db upgrade`) gets `--contacts` people with a
little history (tags, a list, a page view), and, for the measured case, twenty segments mixing
field, tag, list, stage and activity conditions; the baseline case defines none. One worker
(`bench/timed_worker.py`: `magnet worker` with each delivery timed) delivers the setup's
events and builds; then, for each case:

1. **Throughput.** With the worker stopped, `--events` events are recorded through the engine
   (`engine.events`, and the contact store for tags, field changes and lists); the worker is
   started and drains them. Events delivered per second count from its first delivery to its
   last, the `segment_entered` / `segment_left` events the segments record included (they are
   delivered too). Per-event handling time: each delivery transaction's duration divided by
   its events, the median over the deliveries.
2. **Latency.** With the worker running, the stream goes on at `--rate` events a second for
   `--seconds`, recorded every 100 ms, and ten times a second a probe contact is tagged
   `probe`, which makes it enter the segment "Probed". The latency of a probe is its
   `segment_entered` event's time less its `tag_added` event's time, both as stored.

Targets: at least 2,000 events/s, a median of 2 ms or less per event, latency p99 under 2 s.
"""
from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from rq import Worker
from sqlalchemy import func, select

from bench.harness import Service, wait_until
from bench.site import EngineSite
from engine import create_app, events
from engine.contacts import service as contacts
from engine.contacts import store
from engine.db import db, utcnow, write
from engine.events.delivery import pending
from engine.events.models import Activity
from engine.jobs.connection import client_for
from engine.jobs.outbox import OutboxRow
from engine.segments import service as segments
from engine.segments.models import Segment

COUNTRIES = ["GB", "FR", "DE", "ES", "US", "IE"]
TITLES = ["Director of Marketing", "Head of Sales", "Engineer", "Founder", "Analyst"]
TAGS = ["vip", "partner", "trial", "customer", "ebook", "beta", "webinar"]
LISTS = ["product-updates", "events", "newsletter"]
PATHS = ["/pricing", "/blog", "/", "/features", "/demo", "/blog/welcome-sequences"]
# What each recorded operation is, in turn: half page views, then tags, field changes, lists.
MIX = ["page_view", "tag", "page_view", "field", "page_view", "list", "page_view", "tag",
       "page_view", "field"]
PROBE_TAG, PROBE_SEGMENT = "probe", "Probed"
PROBES_PER_SECOND, TICK = 10, 0.1
BATCH = 500  # operations per transaction while filling and recording a backlog


def _field(name: str, op: str, value: str) -> dict[str, Any]:
    return {"kind": "field", "field": name, "op": op, "value": value}


def _tag(name: str, op: str = "has") -> dict[str, Any]:
    return {"kind": "tag", "tag": name, "op": op}


def _listed(slug: str, op: str = "is") -> dict[str, Any]:
    return {"kind": "list", "list": slug, "status": "subscribed", "op": op}


def _did(path: str | None, count: int = 1, days: int | None = 30,
         op: str = "at_least") -> dict[str, Any]:
    condition = {"kind": "activity", "event": "page_view", "op": op, "count": count,
                 "days": days}
    return {**condition, "prop": "path", "value": path} if path else condition


def _all(*conditions: dict[str, Any], match: str = "all") -> dict[str, Any]:
    return {"match": "all", "groups": [{"match": match, "conditions": list(conditions)}]}


SEGMENTS: dict[str, dict[str, Any]] = {
    "UK": _all(_field("country", "equals", "GB")),
    "French leads": _all(_field("country", "equals", "FR"),
                         {"kind": "stage", "stages": ["lead"], "op": "is"}),
    "Directors": _all(_field("job_title", "contains", "director")),
    "Heads": _all(_field("job_title", "starts_with", "head")),
    "Webinar": _all(_tag("webinar")),
    "VIP or partner": _all(_tag("vip"), _tag("partner"), match="any"),
    "UK webinar": _all(_tag("webinar"), _field("country", "equals", "GB")),
    "Customers": _all({"kind": "stage", "stages": ["customer"], "op": "is"}),
    "Newsletter": _all(_listed("newsletter")),
    "Newsletter, not customers": _all(_listed("newsletter"), _tag("customer", "has_not")),
    "Product updates": _all(_listed("product-updates")),
    "Pricing, 30 days": _all(_did("/pricing")),
    "Pricing 3 times, 30 days": _all(_did("/pricing", count=3)),
    "Busy this week": _all(_did(None, count=5, days=7)),
    "Never saw the demo": _all(_did("/demo", days=None, op="fewer_than")),
    "Blog readers": _all(_did("/blog", count=2, days=90)),
    "UK webinar pricing": _all(_field("country", "equals", "GB"), _tag("webinar"),
                               _did("/pricing")),
    "Trial on pricing": _all(_tag("trial"), _did("/pricing")),
    "Continental": _all(_field("country", "equals", "DE"), _field("country", "equals", "ES"),
                        match="any"),
    PROBE_SEGMENT: _all(_tag(PROBE_TAG)),
}


# --- recording ---------------------------------------------------------------------------------

def make_contacts(count: int, prefix: str, history: bool) -> list[tuple[int, int, str]]:
    """`count` contacts (with some tags, a list and a page view when `history`), in
    transactions of `BATCH`; (id, number, email) of each. Inside an app context."""
    made = []
    for low in range(0, count, BATCH):
        with write():
            for number in range(low, min(count, low + BATCH)):
                email = f"{prefix}{number}@example.com"
                values = contacts.clean_values({
                    "first_name": "Ana", "country": COUNTRIES[number % len(COUNTRIES)],
                    "job_title": TITLES[number % len(TITLES)],
                    "lifecycle_stage": ["subscriber", "lead", "customer"][number % 3]})
                contact_id = store.save(email, values).id
                made.append((contact_id, number, email))
                if history:
                    _history(contact_id, number)
    return made


def _history(contact_id: int, number: int) -> None:
    if number % 4 == 1:
        store.tag(contact_id, ["webinar"])
    if number % 3 == 0:
        store.subscribe(contact_id, ["newsletter"])
    if number % 5 == 0:
        events.record("page_view", contact_id=contact_id, url="https://www.example.com/pricing",
                      properties={"path": "/pricing"}, occurred_at=utcnow() - timedelta(days=10))


@dataclass
class Stream:
    """The events the benchmark records, one operation after another, over the contacts in
    turn. Each operation changes something (a new tag, list or value each time round), so
    each records at least one event."""

    contacts: list[tuple[int, int, str]]
    done: int = 0

    def record(self, count: int) -> None:
        """Record `count` operations, inside the caller's `write()`."""
        for _ in range(count):
            self._one(self.done)
            self.done += 1

    def _one(self, k: int) -> None:
        contact_id, number, email = self.contacts[k % len(self.contacts)]
        turn, kind = k // len(self.contacts), MIX[k % len(MIX)]
        if kind == "page_view":
            path = PATHS[k % len(PATHS)]
            events.record("page_view", contact_id=contact_id,
                          url=f"https://www.example.com{path}",
                          properties={"path": path, "title": "Page", "referrer": ""})
        elif kind == "tag":
            store.tag(contact_id, [TAGS[turn % len(TAGS)]])
        elif kind == "list":
            store.subscribe(contact_id, [LISTS[turn % len(LISTS)]])
        else:  # a new title, and another country: two `field_changed` events
            country = COUNTRIES[(number + turn + 1) % len(COUNTRIES)]
            store.save(email, contacts.clean_values(
                {"job_title": f"{TITLES[k % len(TITLES)]} {k}", "country": country}))


# --- the worker --------------------------------------------------------------------------------

@dataclass
class Deliveries:
    """The timed worker's record: (start, end, events) of each delivery, wall clock."""

    path: Path
    rows: list[tuple[float, float, int]] = field(default_factory=list)

    def read(self, since: float = 0.0) -> Deliveries:
        text = self.path.read_text() if self.path.exists() else ""
        rows = [(float(a), float(b), int(n)) for a, b, n in
                (line.split() for line in text.splitlines() if line.strip())]
        return Deliveries(self.path, [row for row in rows if row[0] >= since])

    def figures(self) -> dict[str, Any]:
        if not self.rows:
            return {"delivered": 0}
        delivered = sum(n for _, _, n in self.rows)
        span = max(b for _, b, _ in self.rows) - min(a for a, _, _ in self.rows)
        per_event = [(b - a) / n * 1000 for a, b, n in self.rows]
        busy = sum(b - a for a, b, _ in self.rows)
        return {"delivered": delivered, "seconds": round(span, 3),
                "events_per_s": round(delivered / span, 1) if span > 0 else 0.0,
                "deliveries": len(self.rows),
                "median_batch": statistics.median(n for _, _, n in self.rows),
                "per_event_ms_median": round(statistics.median(per_event), 3),
                "per_event_ms_mean": round(busy / delivered * 1000, 3),
                "delivery_ms_median": round(statistics.median(
                    (b - a) * 1000 for a, b, _ in self.rows), 2),
                "busy_share": round(busy / span, 3) if span > 0 else 0.0}


@contextmanager
def worker(site: EngineSite, app: Any, log: Path) -> Iterator[Service]:
    """One timed `magnet worker` on the site, stopped gracefully (SIGTERM) afterwards."""
    process = Service("worker", [sys.executable, "-m", "bench.timed_worker"],
                      {**site.env, "BENCH_DELIVERY_LOG": str(log)}).start()
    try:
        conn = client_for(app)
        wait_until(lambda: Worker.count(connection=conn) > 0, 60, "the worker to listen",
                   process.alive)
        yield process
    finally:
        process.stop()


def settled(app: Any) -> bool:
    """No event waits for delivery, no outbox row to run, every segment built."""
    with app.app_context():
        try:
            return pending() == 0 and not db.session.scalar(
                select(func.count()).select_from(OutboxRow)
                .where(OutboxRow.status.in_(("pending", "running")))) and not db.session.scalar(
                select(func.count()).select_from(Segment).where(Segment.status != "ready"))
        finally:
            db.session.rollback()  # a fresh read next time (SQLite keeps the old snapshot)


def wait_settled(app: Any, process: Service, timeout: float, what: str) -> None:
    try:
        wait_until(lambda: settled(app), timeout, what, process.alive)
    except TimeoutError as exc:
        raise RuntimeError(f"{exc}:\n{process.log_tail()}") from None


# --- the phases ---------------------------------------------------------------------------------

def throughput(site: EngineSite, app: Any, stream: Stream, count: int) -> dict[str, Any]:
    """Record a backlog of `count` operations with the worker stopped; then one worker
    drains it."""
    mark = last_event(app)
    began = time.perf_counter()
    with app.app_context():
        for low in range(0, count, BATCH):
            with write():
                stream.record(min(BATCH, count - low))
    recording = time.perf_counter() - began
    log = site.instance / "deliveries-throughput.log"
    with worker(site, app, log) as process:
        wait_settled(app, process, count / 50 + 120, "the backlog to be delivered")
        delivered = Deliveries(log).read()
    figures = {"operations": count, "recording_seconds": round(recording, 2),
               **recorded_since(app, mark), **delivered.figures()}
    if figures.get("seconds"):
        figures["stream_events_per_s"] = round(figures["stream_events"] / figures["seconds"], 1)
    return figures


SEGMENT_EVENTS = ("segment_entered", "segment_left")


def last_event(app: Any) -> int:
    with app.app_context():
        found = db.session.scalar(select(func.max(Activity.id))) or 0
        db.session.rollback()
    return found


def recorded_since(app: Any, mark: int) -> dict[str, int]:
    """Events stored after event `mark`: the stream's own, and those the segments recorded
    as contacts entered or left them (delivered too, so counted in `delivered`)."""
    with app.app_context():
        rows = dict(db.session.execute(
            select(Activity.type.in_(SEGMENT_EVENTS), func.count())
            .where(Activity.id > mark).group_by(Activity.type.in_(SEGMENT_EVENTS))).all())
        db.session.rollback()
    return {"stream_events": rows.get(False, 0), "segment_events": rows.get(True, 0)}


def latency(site: EngineSite, app: Any, stream: Stream, probes: list[int], rate: float,
            seconds: float) -> dict[str, Any]:
    """The stream at `rate` operations a second with probes, while the worker delivers."""
    log = site.instance / "deliveries-latency.log"
    mark = last_event(app)
    with worker(site, app, log) as process:
        began = time.time()
        ticks, probed = record_steadily(app, stream, probes, rate, seconds)
        wait_settled(app, process, 120, "the stream to be delivered")
        delivered = Deliveries(log).read(since=began)
    return {"target_rate": rate, "recorded_operations_per_s": round(ticks["operations"] /
                                                                    ticks["seconds"], 1),
            "late_ticks": ticks["late"], "probes": len(probed),
            "latency": probe_latency(app, probed), **recorded_since(app, mark),
            **delivered.figures()}


def record_steadily(app: Any, stream: Stream, probes: list[int], rate: float,
                    seconds: float) -> tuple[dict[str, Any], list[int]]:
    """Every `TICK`: the stream's share of operations in one transaction, then a probe in
    its own. Ticks that start late are counted, not made up for."""
    per_tick, every = max(1, round(rate * TICK)), max(1, round(1 / (PROBES_PER_SECOND * TICK)))
    start, count, late, probed = time.monotonic(), 0, 0, []
    with app.app_context():
        while (due := start + count * TICK) < start + seconds:
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            elif wait < -TICK:
                late += 1
            with write():
                stream.record(per_tick)
            if count % every == 0 and len(probed) < len(probes):
                with write():
                    store.tag(probes[len(probed)], [PROBE_TAG])
                probed.append(probes[len(probed)])
            count += 1
    elapsed = time.monotonic() - start
    return {"operations": count * per_tick, "seconds": elapsed, "late": late}, probed


def probe_latency(app: Any, probed: list[int]) -> dict[str, Any]:
    """Each probe's `segment_entered` time less its `tag_added` time, as stored."""
    with app.app_context():
        rows = db.session.execute(select(Activity.contact_id, Activity.type, Activity.occurred_at,
                                         Activity.properties).where(
            Activity.contact_id.in_(probed),
            Activity.type.in_(("tag_added", "segment_entered")))).all()
        db.session.rollback()
    tagged = {c: at for c, kind, at, props in rows
              if kind == "tag_added" and props.get("tag") == PROBE_TAG}
    entered = {c: at for c, kind, at, props in rows
               if kind == "segment_entered" and props.get("segment") == PROBE_SEGMENT}
    waits = sorted((entered[c] - tagged[c]).total_seconds() for c in probed
                   if c in entered and c in tagged)
    if not waits:
        return {"measured": 0, "missing": len(probed)}
    return {"measured": len(waits), "missing": len(probed) - len(waits),
            "p50_s": round(statistics.median(waits), 3), "p90_s": round(_pct(waits, 90), 3),
            "p99_s": round(_pct(waits, 99), 3), "max_s": round(waits[-1], 3)}


def _pct(ordered: list[float], pct: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


# --- a case ----------------------------------------------------------------------------------

def run_case(with_segments: bool, contact_count: int, backlog: int, rate: float,
             seconds: float) -> dict[str, Any]:
    """A fresh site, filled and settled; then the two phases."""
    with EngineSite(workers=0, content=False) as site:
        app = create_app({"REDIS_URL": site.redis.url}, instance_path=site.instance)
        try:
            stream, probes = prepare(site, app, with_segments, contact_count,
                                     int(rate * seconds) + 50)
            print("  throughput...", flush=True)
            first = throughput(site, app, stream, backlog)
            print(f"  {first['stream_events']:,} events recorded, {first['delivered']:,} "
                  f"delivered (with the segments' own) at {first['events_per_s']:,.0f}/s, median "
                  f"{first['per_event_ms_median']} ms per event", flush=True)
            print("  latency...", flush=True)
            second = latency(site, app, stream, probes, rate, seconds)
        finally:
            with app.app_context():
                db.engine.dispose()
    return {"segments": len(SEGMENTS) if with_segments else 0, "throughput": first,
            "latency": second}


def prepare(site: EngineSite, app: Any, with_segments: bool, contact_count: int,
            probe_count: int) -> tuple[Stream, list[int]]:
    """Contacts with their history, the segments built, every event of it delivered."""
    began = time.perf_counter()
    with app.app_context():
        people = make_contacts(contact_count, "person", history=True)
        probes = [c for c, _, _ in make_contacts(probe_count, "probe", history=False)]
        if with_segments:
            for name, definition in SEGMENTS.items():
                segments.save(name, definition)
    with worker(site, app, site.instance / "deliveries-setup.log") as setup:
        wait_settled(app, setup, contact_count / 20 + 300, "the setup to be delivered and built")
    print(f"  {contact_count:,} contacts and {len(SEGMENTS) if with_segments else 0} segments "
          f"ready in {time.perf_counter() - began:.0f} s", flush=True)
    return Stream(people), probes
