"""Lead scoring: events scored by one worker, a rule's recalculation over a million contacts, and
the contact list sorted by score at a million contacts.

    python bench/scoring.py events [--contacts N] [--events N] [--rules R]
    python bench/scoring.py recalc [--contacts N] [--activities N] [--repeat R] [--database-url U]
    python bench/scoring.py list [--contacts N] [--repeat R] [--deep P] [--backends ...]
                                 [--database-url U]

`events` (`bench/score_events.py`) runs on fresh instance folders (SQLite, embedded Redis) and
writes `bench/results/scoring_events.json`; `recalc` (`bench/score_recalc.py`) needs
PostgreSQL, `list` (`bench/score_list.py`) uses it and SQLite: on the server of
`--database-url` or `MAGNET_BENCH_DATABASE_URL` (default
`postgresql://postgres@127.0.0.1/postgres`) each creates a database of its own,
`magnet_bench_scoring`, and drops it afterwards. Each module's docstring says what it measures.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `engine` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Report, print_targets, stop_on_sigterm

DEFAULT_URL = "postgresql://postgres@127.0.0.1/postgres"
TARGET_RATE, TARGET_PER_EVENT_MS, TARGET_RECALC_RATIO, TARGET_PAGE_MS = 2000.0, 2.0, 1.5, 100.0


def server_url(options: argparse.Namespace) -> str:
    return options.database_url or os.environ.get("MAGNET_BENCH_DATABASE_URL", DEFAULT_URL)


def events(options: argparse.Namespace) -> None:
    from bench import score_events
    cases = {}
    for name, scoring in (("scoring off", False), ("scoring on", True)):
        print(f"{name}:", flush=True)
        cases[name] = score_events.run_case(scoring, options.contacts, options.events)
    report = Report("scoring_events", "events scored as one worker delivers them",
                    {"contacts": options.contacts, "events": options.events,
                     "rules": score_events.rule_counts(), "database": "SQLite (WAL)",
                     "worker_processes": 1})
    on, off = cases["scoring on"], cases["scoring off"]
    # The rate counts the recorded events only: the score_changed events the plugin records
    # are delivered too, and would flatter it (all delivered: `events_per_s`).
    rate = on.get("stream_events_per_s", 0.0)
    per_event = on.get("per_event_ms_median", float("inf"))
    report.target("recorded events delivered per second, one worker, scoring on", rate,
                  f">= {TARGET_RATE:g}", rate >= TARGET_RATE)
    report.target("per-event handling time, median ms, scoring on", per_event,
                  f"<= {TARGET_PER_EVENT_MS:g}", per_event <= TARGET_PER_EVENT_MS)
    awards = on["stored_by_scoring"]["scoring_awards"]
    report.target("awards stored by scoring during the drain", awards, "> 0", awards > 0)
    base = off.get("stream_events_per_s")
    ratio = round(rate / base, 3) if base else None
    report.extra.update(cases=cases, ratio_to_scoring_off=ratio)
    path = report.write()
    print(f"\n{report.workload}: {report.description}")
    for name, case in cases.items():
        print(f"  {name}: {case['stream_events']:,} events (+{case['follow_up_events']:,} "
              f"recorded by the handlers) in {case.get('seconds')} s: "
              f"{case.get('stream_events_per_s')}/s ({case.get('events_per_s')}/s with the "
              f"handlers' own); per event median {case.get('per_event_ms_median')}"
              f" ms, p99 {case.get('per_event_ms_p99')} ms; batches of "
              f"{case.get('median_batch')}; {case['scored']}")
    print(f"  events/s with scoring on / off: {ratio}x")
    print_targets(report, path)


def recalc(options: argparse.Namespace) -> None:
    from bench import score_recalc
    figures = score_recalc.run(server_url(options), options.contacts, options.activities,
                               options.repeat)
    report = Report("scoring_recalc", "a rule's recalculation vs hand-written SQL (PostgreSQL)",
                    {"contacts": options.contacts, "activities": options.activities,
                     "repeat": options.repeat, "database": "PostgreSQL (own database, dropped)",
                     "rule": score_recalc.RULE})
    ratio = figures["ratio"]  # met only with the same result: doing nothing is fast
    report.target("recalculate() / hand-written DELETE + INSERT … SELECT + UPDATE", ratio,
                  f"<= {TARGET_RECALC_RATIO}x",
                  ratio <= TARGET_RECALC_RATIO and figures["same_result"])
    report.target("same awards and accs as the hand-written SQL", int(figures["same_result"]),
                  "1", figures["same_result"])
    report.extra.update(figures)
    path = report.write()
    print(f"\n{report.workload}: {figures['awards']:,} awards to {figures['contacts_scored']:,} "
          f"contacts, median of {options.repeat} passes each")
    for name, seconds in figures["median_seconds"].items():
        print(f"  {name:<40} {seconds:>8.3f} s")
    print(f"  ratio {ratio}x (per-pass ratios {figures['pass_ratios']}); awards written by "
          f"recalculate(): {figures['magnet_awards']:,}; {figures['checks']}")
    print_targets(report, path)


def sorted_list(options: argparse.Namespace) -> None:
    from bench import score_list
    backends = []
    if "postgresql" in options.backends:
        print("PostgreSQL:", flush=True)
        backends.append(score_list.run_postgresql(server_url(options), options.contacts,
                                                  options.repeat, options.deep))
    if "sqlite" in options.backends:
        print("SQLite:", flush=True)
        backends.append(score_list.run_sqlite(options.contacts, options.repeat, options.deep))
    report = Report("scoring_list", "the contact list sorted by score at a million contacts",
                    {"contacts": options.contacts, "repeat": options.repeat,
                     "deep": options.deep, "backends": options.backends})
    for backend in backends:
        name = backend["backend"]
        report.target(f"{name}: slowest page, median ms ({backend['slowest_page']})",
                      backend["slowest_median_ms"], f"< {TARGET_PAGE_MS:g}",
                      backend["all_under_target"])
        report.target(f"{name}: every page the same 50 contacts as the hand-written ORDER BY",
                      int(backend["all_same_as_reference"]), "1",
                      backend["all_same_as_reference"])
    report.extra["backends"] = backends
    path = report.write()
    print_targets(report, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parts = parser.add_subparsers(dest="part", required=True)
    stream = parts.add_parser("events", help="events scored by one worker (SQLite)")
    stream.add_argument("--contacts", type=int, default=5_000)
    stream.add_argument("--events", type=int, default=50_000)
    bulk = parts.add_parser("recalc", help="a rule's recalculation (PostgreSQL)")
    bulk.add_argument("--contacts", type=int, default=1_000_000)
    bulk.add_argument("--activities", type=int, default=3_000_000)
    bulk.add_argument("--repeat", type=int, default=3,
                      help="measured passes of each after a warm-up (default 3)")
    listing = parts.add_parser("list", help="the contact list sorted by score")
    listing.add_argument("--contacts", type=int, default=1_000_000)
    listing.add_argument("--repeat", type=int, default=15)
    listing.add_argument("--deep", type=int, default=200,
                         help="the deep page follows this many pages (default 200)")
    listing.add_argument("--backends", nargs="+", choices=("postgresql", "sqlite"),
                         default=["postgresql", "sqlite"])
    for part in (bulk, listing):
        part.add_argument("--database-url", default="",
                          help="PostgreSQL server (default MAGNET_BENCH_DATABASE_URL or "
                               f"{DEFAULT_URL})")
    options = parser.parse_args()
    runs: dict[str, Any] = {"events": events, "recalc": recalc, "list": sorted_list}
    with stop_on_sigterm():
        runs[options.part](options)


if __name__ == "__main__":
    main()
