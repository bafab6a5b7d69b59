"""Run every benchmark in turn, each in its own process, and list where the figures went.

    python bench/run_all.py [--quick] [--only NAME ...]

`--quick` shortens each workload (1 round of 3 s, 1 s warm-up): a check that everything still
runs, not a measurement.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
HTTP_WORKLOADS = ("pages", "submissions", "beacon", "events_api")
WORKLOADS = (*HTTP_WORKLOADS, "worker_throughput", "import_contacts", "segments_incremental",
             "send", "scoring_events")
# Run only when named with --only: they need PostgreSQL and load a million contacts (and, for
# segments_bulk, ten million activities).
ON_REQUEST = ("contacts_list", "segments_bulk", "scoring_recalc", "scoring_list")
# Workloads that are a part of a script rather than a script of their own name.
SCRIPTS = {"segments_incremental": ["segments.py", "incremental"],
           "segments_bulk": ["segments.py", "bulk"],
           "scoring_events": ["scoring.py", "events"],
           "scoring_recalc": ["scoring.py", "recalc"],
           "scoring_list": ["scoring.py", "list"]}
QUICK = {"http": ["--duration", "3", "--rounds", "1", "--warmup", "1"],
         "worker_throughput": ["--jobs", "200", "--forking-jobs", "40", "--outbox-rows", "1000",
                               "--rounds", "1"],
         "import_contacts": ["--rows", "10000"],
         "send": ["--recipients", "5000"],
         "contacts_list": ["--contacts", "100000", "--repeat", "5"],
         "segments_incremental": ["--contacts", "2000", "--events", "2000", "--rate", "200",
                                  "--seconds", "5"],
         "segments_bulk": ["--contacts", "100000", "--activities", "1000000", "--repeat", "1"],
         "scoring_events": ["--contacts", "500", "--events", "5000"],
         "scoring_recalc": ["--contacts", "100000", "--activities", "300000", "--repeat", "1"],
         "scoring_list": ["--contacts", "100000", "--repeat", "5", "--deep", "20"]}


def summary(result: dict[str, Any]) -> list[str]:
    """A result's ratios to its first baseline, then its targets."""
    lines = []
    for baseline, ratios in list(result.get("ratios", {}).items())[:1]:
        lines += [f"{label} / {baseline} = {ratio}x" for label, ratio in ratios.items()
                  if label != baseline]
    found = result.get("targets", [])
    if not found and "target_seconds" in result:  # a workload timing one command
        found = [{"target": "seconds", "value": result["seconds"],
                  "goal": f"< {result['target_seconds']:g}", "met": result["met"]}]
    if not found and "target_ms" in result:  # pages timed in-process, each with its ratio
        found = [{"target": f"{row['page']} median ms ({row['ratio']}x hand SQL)",
                  "value": row["magnet"]["median_ms"], "goal": f"< {result['target_ms']:g}",
                  "met": row["under_target"]} for row in result.get("results", [])]
    lines += [f"target {t['target']} = {t['value']} (goal {t['goal']}, "
              f"{'met' if t['met'] else 'not met'})" for t in found]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs, to check they work")
    parser.add_argument("--only", nargs="+", choices=WORKLOADS + ON_REQUEST,
                        help="run only these (contacts_list, segments_bulk, scoring_recalc and "
                             "scoring_list run only when named)")
    options = parser.parse_args()
    failed = []
    for name in options.only or WORKLOADS:
        script, *part = SCRIPTS.get(name, [f"{name}.py"])
        args = [sys.executable, str(BENCH / script), *part]
        if options.quick:
            args += QUICK["http"] if name in HTTP_WORKLOADS else QUICK[name]
        print(f"\n=== {name} ===", flush=True)
        began = time.monotonic()
        if subprocess.call(args) != 0:
            failed.append(name)
        print(f"=== {name}: {time.monotonic() - began:.0f} s ===", flush=True)
    print("\nsummary (ratios are to each workload's baseline measured in the same run):")
    for name in options.only or WORKLOADS:
        path = BENCH / "results" / f"{name}.json"
        if name not in failed and path.exists():
            for line in summary(json.loads(path.read_text())):
                print(f"  {name}: {line}")
    print(f"figures in {BENCH / 'results'}")
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
