"""Events from integrations: `POST /api/v1/events` against bare Flask doing one INSERT.

A shop or a CRM sends each event as JSON with its API key (created here with the engine's
own `engine.api.keys.create`, as Admin → API keys does) and a unique idempotency key per
request. Magnet checks the key and the event against its declared type, counts the key's
rate limit (per process, reported to Redis in blocks), keeps the event in the intake with one
INSERT and answers 202; a running `magnet worker` drains the intake meanwhile (the contact, the
event and its delivery queue row, in batches) and delivers the events. Two Magnet loads run in
the same rounds: a purchase by a new address each time (the drain makes the address a contact,
with a `contact_created` event: the most work per event) and a purchase by one known customer.
The key's rate limit is raised for the run, since all the load comes from one key; it is still
counted. Each Magnet load starts once the worker is done with what the load before left it
(`EngineSite.wait_quiet`), as each baseline's starts on a quiet machine: a load that began
while the worker still drained the one before could find one web process without a CPU when
its connections were made, and that process then served none of them (the other took all 16
for the whole load: half the rate). The worker's CPU meanwhile still counts in its figure.
Baseline: bare Flask that checks a bearer key, parses the same JSON and stores it with one
INSERT, answering 201 with the id. A second one in the same rounds is the endpoint's floor
(`bench.events_floor`): bare Flask doing by hand only what the product requires of a
synchronous answer (key lookup, a rate-limit round trip to Redis, the contact, the event and its
queue row and the idempotency key in one transaction, the worker's wake-up), with no worker
delivering. It describes an answer given once the event is stored, as the endpoint gave before
it had an intake; the endpoint now does less than it per request, and the drain does the rest
in the worker. Afterwards the intake must drain (nothing refused), every accepted Magnet event
must be stored as an event ("none lost"), and the delivery queue must drain.
Target: at least 0.7x the baseline's requests per second, none lost.

    python bench/events_api.py [--duration S] [--connections N] [--rounds R]
"""
from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `engine` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.baselines import EVENTS_KEY, count_submissions
from bench.harness import (
    UNIQUE,
    Gunicorn,
    Report,
    Request,
    Subject,
    answered,
    arguments,
    compare,
    settings,
    stop_on_sigterm,
    wait_until,
)
from bench.site import Cpu, EngineSite

PATH = "/api/v1/events"
BASELINE = "bare Flask: JSON + one INSERT"
FLOOR = "bare Flask: the synchronous floor"
NEW_BUYER = "magnet: purchase, new contact"
KNOWN_BUYER = "magnet: purchase, known contact"
CUSTOMER = "customer@example.com"
TARGET = 0.7


def event_body(email: str) -> str:
    """A purchase as a shop sends it; `UNIQUE` makes the order and the idempotency key (and,
    in `email`, the address) new in every request."""
    return json.dumps({"email": email, "type": "purchase",
                       "properties": {"order_id": f"A-{UNIQUE}", "amount": 49.5,
                                      "currency": "GBP", "product": "E-book bundle"},
                       "idempotency_key": f"order-{UNIQUE}"})


def event_request(key: str, email: str) -> Request:
    return Request(PATH, "POST", {"Authorization": f"Bearer {key}",
                                  "Content-Type": "application/json"}, event_body(email))


def api_key(site: EngineSite) -> str:
    """A key made by the engine's own service, and the known customer's first purchase."""
    from engine import create_app
    from engine.api import intake, keys
    from engine.db import db
    app = create_app({"REDIS_URL": site.redis.url}, instance_path=site.instance)
    try:
        with app.app_context():
            _, key = keys.create("Benchmark shop", None)
            intake.record_external(CUSTOMER, "purchase", {"order_id": "A-0", "amount": 1.0},
                                   source="api")
    finally:
        with app.app_context():
            db.engine.dispose()
    return key


def stored(database: Path, sql: str) -> int:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        return int(connection.execute(sql).fetchone()[0])
    finally:
        connection.close()


def accounting(site: EngineSite, runs: dict[str, list[Any]], baseline_db: str) -> dict[str, Any]:
    """What was accepted against what was stored, and how long the drain and delivery took to
    catch up."""
    database = site.instance / "magnet.db"
    load_ended = time.monotonic()
    waiting = "SELECT count(*) FROM api_intake WHERE processed_at IS NULL"
    arrived = [-1]

    def settled() -> bool:
        """No request still in flight adds to the intake (over half a second)."""
        last, arrived[0] = arrived[0], stored(database, "SELECT coalesce(max(id), 0) "
                                                        "FROM api_intake")
        time.sleep(0.5)
        return last == arrived[0]
    try:
        wait_until(settled, 60, "the last requests to be answered")
        wait_until(lambda: stored(database, waiting) == 0, 300, "the intake to drain")
    except TimeoutError:
        pass
    intake_drained = time.monotonic() - load_ended
    purchases = stored(database, "SELECT count(*) FROM activities WHERE type = 'purchase'")
    try:
        wait_until(lambda: stored(database, "SELECT count(*) FROM event_queue") == 0, 300,
                   "the delivery queue to drain")
    except TimeoutError:
        pass
    return {
        "magnet_accepted": answered(runs[NEW_BUYER]) + answered(runs[KNOWN_BUYER]),
        "magnet_purchases_stored": purchases - 1,  # less the known customer's first
        "magnet_contacts": stored(database, "SELECT count(*) FROM contacts"),
        "intake_left": stored(database, waiting),
        "intake_refused": stored(database,
                                 "SELECT count(*) FROM api_intake WHERE refused IS NOT NULL"),
        "intake_drained_seconds_after_load": round(intake_drained, 1),
        "queue_left": stored(database, "SELECT count(*) FROM event_queue"),
        "queue_drained_seconds_after_load": round(time.monotonic() - load_ended, 1),
        "baseline_accepted": answered(runs[BASELINE]),
        "baseline_stored": count_submissions(baseline_db, "events"),
        "floor_accepted": answered(runs[FLOOR]),
        "note": "stored can exceed accepted by the requests still in flight when the load "
                "generator stopped (at most connections x runs); lost = accepted - stored",
    }


def main() -> None:
    options = arguments(__doc__.split("\n\n")[0])
    report = Report("events_api", "events accepted per second from integrations",
                    settings(options, worker_processes=1), baselines=[BASELINE, FLOOR])
    unbounded = {"MAGNET_API_RATE_LIMIT": str(10**12)}
    with stop_on_sigterm(), ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-events-"))
        baseline_db = f"{folder}/baseline.db"
        site = stack.enter_context(EngineSite(content=False, config=unbounded))
        key = api_key(site)
        engine = site.serve()
        bare = stack.enter_context(Gunicorn("bench.baselines:events_app()",
                                            {"BENCH_SQLITE": baseline_db}))
        floor = stack.enter_context(Gunicorn("bench.events_floor:events_floor_app()",
                                             {"BENCH_SQLITE": f"{folder}/floor.db",
                                              "BENCH_REDIS_URL": site.redis.url}))
        magnet = (NEW_BUYER, KNOWN_BUYER)
        cpu = Cpu({"bare endpoint": ((BASELINE,), [bare]), "floor": ((FLOOR,), [floor]),
                   "magnet: web": (magnet, [engine]),
                   "magnet: worker": (magnet, [s for s in site.services
                                               if s.name.startswith("worker")])})
        runs = compare(report, [
            Subject(BASELINE, bare, event_request(EVENTS_KEY, f"buyer-{UNIQUE}@example.com")),
            Subject(FLOOR, floor, event_request(EVENTS_KEY, f"buyer-{UNIQUE}@example.com")),
            Subject(NEW_BUYER, engine, event_request(key, f"buyer-{UNIQUE}@example.com"),
                    site.wait_quiet),
            Subject(KNOWN_BUYER, engine, event_request(key, CUSTOMER), site.wait_quiet)],
            options)
        report.extra["accounting"] = accounting(site, runs, baseline_db)
        report.extra["cpu_ms_per_event"] = cpu.per_event(runs)  # the intake drained, delivered
        print(f"CPU ms per answered request (Redis and wrk left out): "
              f"{report.extra['cpu_ms_per_event']}")
    counted = report.extra["accounting"]
    lost = max(0, counted["magnet_accepted"] - counted["magnet_purchases_stored"])
    for label in (NEW_BUYER, KNOWN_BUYER):
        ratio = report.ratio(label, BASELINE)
        report.target(f"{label} / bare Flask + INSERT", ratio, f">= {TARGET}x", ratio >= TARGET)
    report.extra["floor_ratio"] = round(report.ratio(FLOOR, BASELINE), 3)
    for label in (NEW_BUYER, KNOWN_BUYER):
        report.extra[f"{label} / floor"] = round(report.ratio(label, FLOOR), 3)
    report.target("events lost", lost, "0", lost == 0)
    report.target("events left in the intake", counted["intake_left"], "0",
                  counted["intake_left"] == 0)
    report.target("events refused by the drain", counted["intake_refused"], "0",
                  counted["intake_refused"] == 0)
    report.target("events left undelivered", counted["queue_left"], "0",
                  counted["queue_left"] == 0)
    report.finish()


if __name__ == "__main__":
    main()
