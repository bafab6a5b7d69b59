"""Worker throughput: jobs per second of `magnet worker` against RQ's default forking Worker.

Both work the same queue on the same embedded Redis and instance folder, one process each,
for two kinds of job: a trivial one (a named job that does nothing, as `engine.jobs.enqueue`
queues it: one RQ job each) and an outbox one (rows written with `outbox.add`; the commit wakes
the queue, and one RQ job claims the due rows a batch at a time, runs them and marks them
done). Each worker is started first and given the jobs once it listens; the rate counts from
the moment the jobs are queued to the end of the last one (RQ's record, or the row's done
mark), so process start-up is left out and forking, queueing and batching are all counted.

    python bench/worker_throughput.py [--jobs N] [--forking-jobs N] [--outbox-rows N] [--rounds R]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `engine` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rq import Queue, Worker
from rq.job import Job
from rq.registry import FinishedJobRegistry
from sqlalchemy import delete, func, select

from bench.harness import ROOT, Report, Service, machine, stop_on_sigterm, wait_until
from bench.site import EngineSite
from engine import create_app
from engine.db import db, write
from engine.jobs import outbox
from engine.jobs.connection import client_for
from engine.jobs.runner import run_named

BENCH_PLUGINS = str(ROOT / "bench" / "bench_plugins")
WORKERS = {
    "magnet worker (SimpleWorker)": ["-m", "engine.cli", "worker", "--queues", "default"],
    "RQ forking Worker": ["-m", "bench.forking_worker", "default"],
}
MAGNET, FORKING = WORKERS


def enqueue_trivial(conn: Any, count: int) -> None:
    queue = Queue("default", connection=conn)
    queue.enqueue_many([Queue.prepare_data(run_named, ("bench.noop", {}), result_ttl=600)
                        for _ in range(count)])


def enqueue_outbox(count: int) -> None:
    with write():
        for number in range(count):
            outbox.add("bench.noop", number=number)


def trivial_done(conn: Any) -> tuple[int, datetime | None]:
    """(jobs finished, when the last one ended), from RQ's records."""
    registry = FinishedJobRegistry("default", connection=conn)
    jobs = [job for job in Job.fetch_many(registry.get_job_ids(), connection=conn) if job]
    return len(jobs), max((job.ended_at for job in jobs), default=None)


def outbox_done() -> tuple[int, datetime | None]:
    """(rows done, when the last one was marked done), from the rows."""
    row = outbox.OutboxRow
    done, last = db.session.execute(select(func.count(), func.max(row.done_at))
                                    .where(row.status == "done")).one()
    db.session.rollback()  # end the read, so the next poll sees the worker's commits
    return done, last


def run_case(site: EngineSite, app: Any, worker: str, kind: str, count: int) -> dict[str, Any]:
    """Start the worker, wait until it listens, queue `count` jobs, and time them all."""
    conn = client_for(app)
    conn.flushdb()
    service = Service("worker", [sys.executable, *WORKERS[worker]], site.env).start()
    try:
        wait_until(lambda: Worker.count(connection=conn) > 0, 60, f"{worker} to listen",
                   service.alive)
        with app.app_context():
            began = datetime.now(UTC)
            if kind == "trivial":
                enqueue_trivial(conn, count)
            else:
                enqueue_outbox(count)
            progress = (lambda: trivial_done(conn)) if kind == "trivial" else outbox_done
            wait_until(lambda: progress()[0] >= count, count / 5 + 120,
                       f"{worker} to finish {count} {kind} jobs", service.alive)
            finished, last = progress()
            if kind == "outbox":
                with write() as session:
                    session.execute(delete(outbox.OutboxRow))
    except TimeoutError as exc:
        raise RuntimeError(f"{exc}:\n{service.log_tail()}") from None
    finally:
        service.stop()
    seconds = (last - began).total_seconds() if last else 0.0
    case = {"worker": worker, "job": kind, "jobs": count, "finished": finished,
            "seconds": round(seconds, 3),
            "jobs_per_s": round(finished / seconds, 1) if seconds > 0 else 0.0}
    print(f"  {worker}, {kind} job: {case['jobs_per_s']:,.0f} jobs/s "
          f"({finished}/{count} finished in {seconds:.2f} s)", flush=True)
    return case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500,
                        help="trivial jobs per run for magnet worker (default 500)")
    parser.add_argument("--forking-jobs", type=int, default=75,
                        help="trivial jobs per run for the forking worker, which is slower "
                             "(default 75)")
    parser.add_argument("--outbox-rows", type=int, default=5000,
                        help="outbox rows per run, for both workers: they run in batches "
                             "(default 5000)")
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
                        count = (options.outbox_rows if kind == "outbox" else
                                 options.jobs if worker == MAGNET else options.forking_jobs)
                        cases.append({"round": number,
                                      **run_case(site, app, worker, kind, count)})
        finally:
            with app.app_context():
                db.engine.dispose()
            client_for(app).close()

    report = Report("worker_throughput", "jobs per second, magnet worker vs RQ's forking Worker",
                    {"jobs": options.jobs, "forking_jobs": options.forking_jobs,
                     "outbox_rows": options.outbox_rows,
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
    # Outbox rows run in batches, one RQ job per batch, so forking costs little there: only
    # the one-job-per-task case has a target.
    report.target("trivial job: magnet worker / forking Worker", ratios["trivial"], "> 1x",
                  ratios["trivial"] > 1)
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
