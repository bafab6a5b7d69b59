"""Segments: a build over a million contacts (PostgreSQL), and membership kept current by one
worker as events stream in (SQLite, embedded Redis).

    python bench/segments.py bulk [--contacts N] [--activities N] [--repeat R]
    python bench/segments.py incremental [--contacts N] [--events N] [--rate R] [--seconds S]

`bulk` (`bench/segment_build.py`) needs PostgreSQL at `MAGNET_BENCH_DATABASE_URL` (default
`postgresql://postgres@127.0.0.1/postgres`), where it creates a database of its own and drops
it afterwards; it writes `bench/results/segments_bulk.json`. `incremental`
(`bench/segment_events.py`) runs on a fresh instance folder and writes
`bench/results/segments_incremental.json`. Each module's docstring says what it measures.
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
TARGET_RATE, TARGET_PER_EVENT_MS, TARGET_P99_S = 2000.0, 2.0, 2.0


def bulk(options: argparse.Namespace) -> None:
    from bench import segment_build
    server = os.environ.get("MAGNET_BENCH_DATABASE_URL", DEFAULT_URL)
    figures = segment_build.run(server, options.contacts, options.activities, options.repeat,
                                options.database)
    report = Report("segments_bulk", "a segment's first build on PostgreSQL vs hand-written SQL",
                    {"contacts": options.contacts, "activities": options.activities,
                     "repeat": options.repeat, "database": "PostgreSQL (own database, dropped)",
                     "build_chunk": 50_000})
    ratio = figures["ratio"]
    report.target("build time / hand-written INSERT … SELECT", ratio,
                  f"<= {segment_build.TARGET_RATIO}x", ratio <= segment_build.TARGET_RATIO)
    report.target("same members (count and contacts)", int(figures["same_members"]), "1",
                  figures["same_members"])
    report.extra.update(figures)
    path = report.write()
    print(f"\n{report.workload}: {figures['members']:,} members, median of "
          f"{options.repeat} passes")
    for name, seconds in figures["median_seconds"].items():
        print(f"  {name:<42} {seconds:>8.3f} s")
    print(f"  per-pass ratios {figures['pass_ratios']}: median {figures['ratio']}x "
          f"(ratio of the medians {figures['ratio_of_medians']}x)")
    print(f"  against the same statement with the engine's meaning (lower(country)): per-pass "
          f"{figures['same_meaning_pass_ratios']}, median {figures['ratio_to_same_meaning']}x")
    print_targets(report, path)


def incremental(options: argparse.Namespace) -> None:
    from bench import segment_events
    cases = {}
    for name, with_segments in (("without segments", False), ("20 segments", True)):
        print(f"{name}:", flush=True)
        cases[name] = segment_events.run_case(with_segments, options.contacts, options.events,
                                              options.rate, options.seconds)
    report = Report("segments_incremental", "events delivered by one worker, with 20 segments",
                    {"contacts": options.contacts, "events": options.events,
                     "rate": options.rate, "seconds": options.seconds,
                     "database": "SQLite (WAL)", "redis": "embedded", "worker_processes": 1,
                     "events_batch": 500})
    measured, base = cases["20 segments"], cases["without segments"]
    first, second = measured["throughput"], measured["latency"]
    rate = first.get("stream_events_per_s", 0.0)
    p99 = second["latency"].get("p99_s", float("inf"))
    # The rate counts the stream's own events only: the segment_entered / segment_left events
    # the worker also delivers would flatter it (their rate is kept as `events_per_s`).
    report.target("stream events delivered per second, one worker", rate,
                  f">= {TARGET_RATE:g}", rate >= TARGET_RATE)
    for phase, figures in (("backlog", first), ("steady stream", second)):
        per_event = figures.get("per_event_ms_median", float("inf"))
        report.target(f"per-event handling time, median ms ({phase})", per_event,
                      f"<= {TARGET_PER_EVENT_MS:g}", per_event <= TARGET_PER_EVENT_MS)
    report.target("recorded to segment_entered stored, p99 s", p99, f"< {TARGET_P99_S:g}",
                  p99 < TARGET_P99_S)
    base_rate = base["throughput"].get("stream_events_per_s")
    report.extra.update(cases=cases, ratio_to_no_segments=round(rate / base_rate, 2)
                        if base_rate else None)
    path = report.write()
    print(f"\n{report.workload}: {report.description}")
    for name, case in cases.items():
        _case_lines(name, case)
    print(f"  ratio of events/s to the same worker without segments: "
          f"{report.extra['ratio_to_no_segments']}x")
    print_targets(report, path)


def _case_lines(name: str, case: dict[str, Any]) -> None:
    first, second = case["throughput"], case["latency"]
    print(f"  {name}, backlog: {first['stream_events']:,} events (+{first['segment_events']:,} "
          f"from segments) in {first.get('seconds')} s: {first.get('stream_events_per_s')}/s "
          f"({first.get('events_per_s')}/s with the segments' own); median "
          f"{first.get('per_event_ms_median')} ms per event, batches of "
          f"{first.get('median_batch')}")
    print(f"  {name}, steady stream at {second['recorded_operations_per_s']:,.0f} operations/s: "
          f"median {second.get('per_event_ms_median')} ms per event, batches of "
          f"{second.get('median_batch')}; latency {second['latency']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parts = parser.add_subparsers(dest="part", required=True)
    build = parts.add_parser("bulk", help="a build over a million contacts (PostgreSQL)")
    build.add_argument("--contacts", type=int, default=1_000_000)
    build.add_argument("--activities", type=int, default=10_000_000)
    build.add_argument("--repeat", type=int, default=3,
                       help="measured passes after a warm-up (default 3)")
    build.add_argument("--database", default="magnet_bench_segments",
                       help="the database made (and dropped) on the server for the run")
    stream = parts.add_parser("incremental", help="events delivered by one worker (SQLite)")
    stream.add_argument("--contacts", type=int, default=20_000)
    stream.add_argument("--events", type=int, default=20_000,
                        help="operations recorded as the backlog (default 20,000)")
    stream.add_argument("--rate", type=float, default=500.0,
                        help="operations a second during the latency phase (default 500)")
    stream.add_argument("--seconds", type=float, default=20.0,
                        help="length of the latency phase (default 20)")
    options = parser.parse_args()
    with stop_on_sigterm():
        (bulk if options.part == "bulk" else incremental)(options)


if __name__ == "__main__":
    main()
