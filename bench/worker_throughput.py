"""Worker throughput: jobs per second of `magnet worker` against RQ's default forking Worker.

Both work the same queue on the same embedded Redis and instance folder, one process each,
in burst mode, for two kinds of job: a trivial one (a named job that does nothing, as
`engine.jobs.enqueue` queues it) and an outbox one (a row written with `outbox.add`, relayed
after the commit, then claimed and marked done by the worker: two write transactions).
The rate is counted from the first job's start to the last job's end, so process start-up is
left out for both.

    python bench/worker_throughput.py [--jobs N] [--forking-jobs N] [--rounds R]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `engine` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rq import Queue
from rq.job import Job, JobStatus
from sqlalchemy import func, select

from bench.harness import ROOT, Report, Service, machine, stop_on_sigterm
from bench.site import EngineSite
from engine import create_app
from engine.db import db, write
from engine.jobs import outbox
from engine.jobs.connection import client_for
from engine.jobs.runner import run_named

BENCH_PLUGINS = str(ROOT / "bench" / "bench_plugins")
WORKERS = {
    "magnet worker (SimpleWorker)": ["-m", "engine.cli", "worker", "--burst", "--queues",
                                     "default"],
    "RQ forking Worker": ["-m", "bench.forking_worker", "default"],
}
MAGNET, FORKING = WORKERS


def enqueue_trivial(conn: Any, count: int) -> list[str]:
    queue = Queue("default", connection=conn)
    jobs = queue.enqueue_many([Queue.prepare_data(run_named, ("bench.noop", {}), result_ttl=600)
                               for _ in range(count)])
    return [job.id for job in jobs]


def enqueue_outbox(count: int) -> list[str]:
    with write():
        rows = [outbox.add("bench.noop", number=number) for number in range(count)]
    return [f"outbox-{row.id}-0" for row in rows]  # the ids `outbox.relay` gives


def run_case(site: EngineSite, app: Any, worker: str, kind: str, count: int) -> dict[str, Any]:
    conn = client_for(app)
    conn.flushdb()
    with app.app_context():
        ids = enqueue_trivial(conn, count) if kind == "trivial" else enqueue_outbox(count)
    service = Service("worker", [sys.executable, *WORKERS[worker]], site.env)
    began = time.monotonic()
    service.start()
    try:
        code = service.wait(timeout=count / 5 + 120)
        if code != 0:
            raise RuntimeError(f"{worker} exited with {code}:\n{service.log_tail()}")
    finally:
        service.stop()
    wall = time.monotonic() - began
    jobs = [job for job in Job.fetch_many(ids, connection=conn) if job is not None]
    finished = [job for job in jobs if job.get_status() == JobStatus.FINISHED]
    first = min(job.started_at for job in finished)
    last = max(job.ended_at for job in finished)
    span = (last - first).total_seconds()
    case = {"worker": worker, "job": kind, "jobs": count, "finished": len(finished),
            "seconds": round(span, 3), "jobs_per_s": round(len(finished) / span, 1) if span else 0,
            "wall_seconds_with_startup": round(wall, 2)}
    if kind == "outbox":
        with app.app_context():
            case["outbox_rows_done"] = db.session.scalar(
                select(func.count()).select_from(outbox.OutboxRow)
                .where(outbox.OutboxRow.status == "done"))
            with write() as session:
                session.query(outbox.OutboxRow).delete()
    print(f"  {worker}, {kind} job: {case['jobs_per_s']:,.0f} jobs/s "
          f"({case['finished']}/{count} finished in {span:.2f} s)", flush=True)
    return case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500,
                        help="jobs per run for magnet worker (default 500)")
    parser.add_argument("--forking-jobs", type=int, default=75,
                        help="jobs per run for the forking worker, which is slower (default 75)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="interleaved rounds over both workers and both jobs (default 2)")
    options = parser.parse_args()

    cases: list[dict[str, Any]] = []
    config = {"MAGNET_PLUGINS_PATH": BENCH_PLUGINS}
    with stop_on_sigterm(), EngineSite(workers=0, content=False, config=config) as site:
        app = create_app({"REDIS_URL": site.redis.url, "PLUGINS_PATH": BENCH_PLUGINS},
                         instance_path=site.instance)
        try:
            for number in range(1, options.rounds + 1):
                print(f"round {number}/{options.rounds}", flush=True)
                for kind in ("trivial", "outbox"):
                    for worker in WORKERS:
                        count = options.jobs if worker == MAGNET else options.forking_jobs
                        cases.append({"round": number,
                                      **run_case(site, app, worker, kind, count)})
        finally:
            with app.app_context():
                db.engine.dispose()
            client_for(app).close()

    report = Report("worker_throughput", "jobs per second, magnet worker vs RQ's forking Worker",
                    {"jobs": options.jobs, "forking_jobs": options.forking_jobs,
                     "rounds": options.rounds, "redis": "embedded (unix socket)",
                     "database": "SQLite (WAL)", "processes": 1})
    totals: dict[tuple[str, str], float] = {}
    ratios: dict[str, float] = {}
    for kind in ("trivial", "outbox"):
        for worker in WORKERS:
            mine = [c for c in cases if c["job"] == kind and c["worker"] == worker]
            seconds = sum(c["seconds"] for c in mine)
            totals[kind, worker] = sum(c["finished"] for c in mine) / seconds if seconds else 0.0
        per_round = [_rate(cases, kind, MAGNET, n) / _rate(cases, kind, FORKING, n)
                     for n in range(1, options.rounds + 1) if _rate(cases, kind, FORKING, n)]
        ratios[kind] = round(statistics.median(per_round), 2) if per_round else 0.0
    report.extra.update({"cases": cases, "ratios_magnet_over_forking": ratios,
                         "jobs_per_s": {f"{kind} / {worker}": round(rate, 1)
                                        for (kind, worker), rate in totals.items()}})
    for kind, ratio in ratios.items():
        report.target(f"{kind} job: magnet worker / forking Worker", ratio, "> 1x", ratio > 1)
    path = report.write()

    print(f"\nworker_throughput: {report.description} ({machine()['cpus']} CPUs)")
    head = f"{'job':<9} {'worker':<30} {'jobs/s':>8} {'ratio':>7}"
    print(head + "\n" + "-" * len(head))
    for (kind, worker), rate in totals.items():
        ratio = ratios[kind] if worker == MAGNET else 1.0
        print(f"{kind:<9} {worker:<30} {rate:>8,.0f} {ratio:>6.2f}x")
    print("(ratio: jobs/s relative to RQ's forking Worker on the same job, in the same run; "
          "median of the per-round ratios)")
    print(f"figures written to {path.relative_to(ROOT)}")


def _rate(cases: list[dict[str, Any]], kind: str, worker: str, number: int) -> float:
    return next(c["jobs_per_s"] for c in cases
                if c["job"] == kind and c["worker"] == worker and c["round"] == number)


if __name__ == "__main__":
    main()
