"""Tracking beacon ingest: events accepted per second, p99, and time until they are stored.

The tracking plugin's endpoint checks each event and hands it to Redis; a running
`magnet worker` drains the buffer into the database in batches. The client sends what the
page script sends with `navigator.sendBeacon` (a JSON page view in a text/plain body, with the
page token read from a landing page's script tag, a browser's User-Agent). As on a real site,
most events come from returning visitors: three in four carry the visitor cookie of one of
`VISITORS` browsers that visited before the load; the fourth has none (a new visitor, who gets
a cookie and a new visit). `--new-visitors` sends every event without a cookie, the worst
case for the worker (a new visitor, visit and visitor row per event). Baseline: a bare Flask
endpoint that parses and checks the same JSON and stores nothing. During the load a probe sends a
marked event every second and times how long it takes to appear in the database. Every load (the
baselines' too) starts once Magnet's worker is quiet, so none starts with a CPU busy draining
what the load before left. Right after the
load the worker is stopped gracefully and started again, as a deploy does; every accepted event must
then be stored.
Targets: at least 5,000 events/s accepted and 0.8x the baseline, p99 under 10 ms, stored
within 2 s.
A third app in the same run, a WSGI callable that does nothing (`bench.baselines.noop_wsgi`),
shows the most gunicorn serves on this machine: no endpoint that does any work can pass it. A
fourth is the floor (`bench.beacon_floor`): the bare endpoint plus the least that stores every
event within 2 s (a hand-over to Redis every 50 ms, a drainer process storing each event as one
row, a batch per transaction); its distance to the bare endpoint is what storing costs on the
same CPUs.
All the load comes from one address, so the site runs with rate limits too high to bite: the
events are still counted in each web process, and reported to Redis in blocks of 1% of the
limit (so, with a limit this high, never during the run).

    python bench/beacon.py [--duration S] [--connections N] [--rounds R] [--new-visitors]
"""
from __future__ import annotations

import json
import re
import secrets
import sqlite3
import statistics
import sys
import threading
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `engine` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import beacon_floor
from bench.harness import (
    UNIQUE,
    Gunicorn,
    Report,
    Request,
    Service,
    Subject,
    answered,
    arguments,
    compare,
    settings,
    stop_on_sigterm,
)
from bench.site import Cpu, EngineSite, fetch

BASELINE = "bare Flask: JSON beacon"
FLOOR = "bare Flask: JSON beacon, stored"
CEILING = "raw WSGI: no-op"
MAGNET = "magnet: tracking beacon"
VISITORS = 2000
# Counted like any visitor's events, never refused (the load generator is one address).
UNBOUNDED = {"MAGNET_TRACKING_RATE_LIMIT": str(10**12),
             "MAGNET_TRACKING_NEW_VISITOR_LIMIT": str(10**12)}
AGENT = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0.0.0 Safari/537.36")


def returning_visitors(base_url: str, request: Request, count: int) -> list[str]:
    """`Cookie` headers of `count` browsers that each sent one page view (their first visit)."""
    cookies = []
    for number in range(count):
        body = request.body.replace(UNIQUE, f"first-visit-{number}").encode()
        post = urllib.request.Request(base_url + request.path, body, request.headers, method="POST")
        with urllib.request.urlopen(post, timeout=10) as answer:
            cookies.append(answer.headers["Set-Cookie"].split(";")[0])
    return cookies


def beacon_request(base_url: str) -> Request:
    """The request the page script would send from the landing page."""
    status, html = fetch(base_url + "/")
    tag = re.search(r'<script[^>]*data-e="([^"]+)"[^>]*data-k="([^"]+)"', html)
    if status != 200 or tag is None:
        raise SystemExit("the landing page has no tracking script tag: is the plugin enabled?")
    endpoint, token = tag.groups()
    event = {"k": token, "t": "page_view", "u": f"{base_url}/?visit={UNIQUE}", "r": "",
             "l": "en-GB", "w": 0, "n": "Brightwater Studio", "z": "Europe/London"}
    return Request(endpoint, "POST", {"Content-Type": "text/plain;charset=UTF-8",
                                      "User-Agent": AGENT, "Origin": base_url,
                                      "Accept-Language": "en-GB,en;q=0.9"},
                   json.dumps(event, separators=(",", ":")))


class Prober(threading.Thread):
    """Sends a marked event now and then during the load and times how long it takes to be
    stored: the time until stored, measured while the endpoint and the worker are busy."""

    def __init__(self, base_url: str, request: Request, database: Path) -> None:
        super().__init__(daemon=True, name="beacon-prober")
        self.url, self.request, self.database = base_url + request.path, request, database
        self.stopping = threading.Event()
        self.latencies: list[float] = []
        self.sent = 0

    def run(self) -> None:
        nonce = secrets.token_hex(4)
        while not self.stopping.wait(1.0):
            marker = f"probe-{nonce}-{self.sent}"
            body = self.request.body.replace(UNIQUE, marker).encode()
            after = last_activity(self.database)
            began = time.monotonic()
            try:
                post = urllib.request.Request(self.url, body, self.request.headers, method="POST")
                with urllib.request.urlopen(post, timeout=10):
                    self.sent += 1
            except OSError:
                continue
            while time.monotonic() - began < 60:
                if stored_events(self.database, f"%={marker}", after):
                    self.latencies.append(time.monotonic() - began)
                    break
                time.sleep(0.05)

    def stop(self) -> None:
        self.stopping.set()
        self.join(70)


def last_activity(database: Path) -> int:
    """The id of the newest timeline row (0 for none): a probe stored later has a larger one."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        return int(connection.execute("SELECT coalesce(max(id), 0) FROM activities").fetchone()[0])
    finally:
        connection.close()


def stored_events(database: Path, url_like: str = "%", after: int = 0) -> int:
    """Page views stored whose URL is like `url_like`, among the rows after id `after`: the
    prober asks every 50 ms while it waits, and over only the rows stored since its probe the
    question stays cheap, where a scan of the whole timeline (hundreds of thousands of rows by
    the last round) would take a share of the CPUs the subjects share."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        return int(connection.execute(
            "SELECT count(*) FROM activities WHERE id > ? AND +type = 'page_view' AND url LIKE ?",
            (after, url_like)).fetchone()[0])
    finally:
        connection.close()


def main() -> None:
    options = arguments(__doc__.split("\n\n")[0], extra=lambda parser: parser.add_argument(
        "--new-visitors", action="store_true", help="send every event without a cookie"))
    report = Report("beacon", "tracking events accepted per second, and stored",
                    settings(options, worker_processes=1), baselines=[BASELINE, FLOOR])
    with stop_on_sigterm(), ExitStack() as stack:
        site = stack.enter_context(EngineSite(plugins=("tracking",), config=UNBOUNDED))
        engine = site.serve()
        bare = stack.enter_context(Gunicorn("bench.baselines:beacon_app"))
        floor_env = {"BENCH_SQLITE": str(site.instance / "floor.db"),
                     "BENCH_REDIS_URL": site.redis.url}
        floor = stack.enter_context(Gunicorn("bench.beacon_floor:beacon_floor_app()", floor_env))
        drainer = stack.enter_context(Service("floor-drainer", [sys.executable, "-m",
                                                                "bench.beacon_floor"], floor_env))
        ceiling = stack.enter_context(Gunicorn("bench.baselines:noop_wsgi"))
        request = beacon_request(engine.url)
        returning: list[str] = []
        if not options.new_visitors:
            returning = returning_visitors(engine.url, request, VISITORS)
            request.cookies = [cookie for number, cookie in enumerate(returning)
                               for cookie in ([cookie, ""] if number % 3 == 2 else [cookie])]
        report.extra["workload"] = ("every event from a new visitor" if options.new_visitors else
                                    f"3 in 4 events from {VISITORS} returning visitors, "
                                    "1 in 4 from a new one")
        bare_request = Request("/t", "POST", request.headers, request.body, request.cookies)
        database = site.instance / "magnet.db"
        prober = Prober(engine.url, request, database)
        cpu = Cpu({"bare endpoint": ((BASELINE,), [bare]), "floor: web": ((FLOOR,), [floor]),
                   "floor: drainer": ((FLOOR,), [drainer]), "magnet: web": ((MAGNET,), [engine]),
                   "magnet: worker": ((MAGNET,), [s for s in site.services
                                                  if s.name.startswith("worker")])})
        prober.start()
        try:
            # Every load starts once Magnet's worker is done with what the last one left it:
            # wrk opens its connections at once, and a web worker whose CPU the drain holds
            # at that moment accepts none of them (the other takes all, at half the rate).
            quiet = site.wait_quiet
            runs = compare(report, [Subject(BASELINE, bare, bare_request, quiet),
                                    Subject(FLOOR, floor, bare_request, quiet),
                                    Subject(MAGNET, engine, request, quiet),
                                    Subject(CEILING, ceiling, bare_request, quiet)], options)
        finally:
            prober.stop()
        site.wait_quiet(limit=60)  # the worker has stored and delivered what it was handed
        report.extra["cpu_ms_per_event"] = cpu.per_event(runs)

        load_ended = time.monotonic()
        engine.stop()  # a graceful stop of the web workers hands over what they hold
        site.restart_workers()  # and one of the worker mid-drain must lose nothing
        accepted = answered(runs[MAGNET]) + prober.sent + len(returning)
        count = stored_events(database)
        while count < accepted and time.monotonic() - load_ended < 120:
            time.sleep(0.1)
            count = stored_events(database)
        floor_accepted = answered(runs[FLOOR])
        floor_stored = beacon_floor.stored(floor_env["BENCH_SQLITE"])
        while floor_stored < floor_accepted and time.monotonic() - load_ended < 120:
            time.sleep(0.1)
            floor_stored = beacon_floor.stored(floor_env["BENCH_SQLITE"])
        report.extra["floor_accounting"] = {"accepted": floor_accepted, "stored": floor_stored}
        latencies = sorted(prober.latencies) or [float("inf")]
        report.extra["accounting"] = {
            "accepted": accepted, "stored": count,
            "seconds_until_all_stored_after_load": round(time.monotonic() - load_ended, 2),
            "probes": len(prober.latencies),
            "probe_seconds_until_stored_median": round(statistics.median(latencies), 3),
            "probe_seconds_until_stored_max": round(latencies[-1], 3),
            "note": "right after the load the web server was stopped and the worker restarted, "
                    "both gracefully (SIGTERM); accepted includes the returning visitors' first "
                    "visits; stored can "
                    "exceed accepted by the requests still in flight when the load generator "
                    "stopped; lost = accepted - stored",
        }
    magnet = report.figures(MAGNET)
    accounting = report.extra["accounting"]
    lost = max(0, accounting["accepted"] - accounting["stored"])
    until_stored = accounting["probe_seconds_until_stored_max"]
    report.target("events/s accepted", magnet.rps, ">= 5000", magnet.rps >= 5000)
    ratio = report.ratio(MAGNET, BASELINE)
    report.target("events/s vs the bare JSON endpoint", ratio, ">= 0.8x", ratio >= 0.8)
    report.target(f"p99 ms at {options.connections} connections", magnet.p99_ms, "< 10 ms",
                  magnet.p99_ms < 10)
    report.target("seconds until stored, slowest probe under load", until_stored, "< 2 s",
                  until_stored < 2)
    report.target("events lost", lost, "0", lost == 0)
    report.extra["floor_ratio"] = round(report.ratio(FLOOR, BASELINE), 3)
    report.extra["magnet / floor"] = round(report.ratio(MAGNET, FLOOR), 3)
    print(f"CPU ms per accepted event (web and storing; Redis and wrk left out): "
          f"{report.extra['cpu_ms_per_event']}")
    print(f"the floor (the bare endpoint, storing): {report.extra['floor_ratio']}x the bare "
          f"endpoint; magnet {report.extra['magnet / floor']}x the floor")
    ceiling = report.figures(CEILING)
    report.extra["ceiling"] = {"rps": round(ceiling.rps), "p99_ms": round(ceiling.p99_ms, 2)}
    print(f"the server's ceiling (a WSGI app doing nothing): {ceiling.rps:,.0f} req/s, "
          f"p99 {ceiling.p99_ms:.1f} ms")
    report.finish()


if __name__ == "__main__":
    main()
