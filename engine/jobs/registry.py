"""Named jobs: what a worker may run, on which queue, and how often for periodic ones.

Jobs are looked up by name rather than passed to RQ as functions, so a row in the outbox or a
job in Redis names a job in words (`mail.send`) that survives code moves, and a disabled
plugin's jobs can be skipped.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from rq import Queue

# In the order a worker takes them: short jobs first (periodic work such as the workflows' due
# steps, follow-ups), then event delivery, then the bulk sending of mail, which hands over
# between its batches whenever a job waits on a queue ahead of it (`ahead_waiting`), so a
# mailing of 100,000 never holds up a due step or a trigger for more than one batch.
QUEUES = ("default", "events", "mail")


@dataclass(frozen=True)
class JobSpec:
    name: str
    func: Callable[..., Any]
    queue: str = "default"
    every: float | None = None  # seconds, for periodic jobs
    atomic: bool = False  # outbox jobs: run the handler and mark the row done in one transaction
    owner: str = ""  # the plugin slug that registered it
    runs: int = 1  # periodic jobs: how many runs may overlap (each on a worker of its own)


# The queues this process's worker listens to (`worker.run_worker` sets them): a worker
# started with `--queues mail` has nothing to give way to.
listening: tuple[str, ...] | None = None


def ahead_waiting(queue: str, conn: Any) -> bool:
    """Whether a job waits on a queue that this worker takes before `queue` (one LLEN each)."""
    ahead = QUEUES[:QUEUES.index(queue)] if queue in QUEUES else ()
    return any(Queue(name, connection=conn).count for name in ahead
               if listening is None or name in listening)


def job(name: str, queue: str = "default", every: float | None = None,
        atomic: bool = False, runs: int = 1) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a function as a job; return it from a `register_jobs` hook to make it runnable.

    `every` makes it periodic: the workers enqueue it once per interval across the cluster.
    `atomic` (outbox jobs whose work is only in the database) commits the handler's writes
    together with the outbox row's `done` mark, so even a crash cannot make it act twice.
    `runs` lets up to that many runs of a periodic job overlap, for jobs that share their work
    out safely themselves (rows claimed with `SKIP LOCKED`), so several workers can help.
    """
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; use one of {QUEUES}")

    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        func.magnet_job = JobSpec(name, func, queue, every, atomic,  # type: ignore[attr-defined]
                                  runs=runs)
        return func
    return mark


def build(app: Flask) -> dict[str, JobSpec]:
    """Collect every plugin's jobs (start-up); two jobs with one name refuse to start."""
    plugins = app.extensions["magnet.plugins"]
    found = plugins.collect_unique("register_jobs", key=lambda f: _spec(f).name)
    return {name: JobSpec(**{**_spec(func).__dict__, "owner": owner})
            for name, (owner, func) in found.items()}


def _spec(func: Callable[..., Any]) -> JobSpec:
    try:
        return func.magnet_job  # type: ignore[attr-defined]
    except AttributeError:
        raise TypeError(f"{func!r} is returned by register_jobs but is not decorated with "
                        "@engine.jobs.job") from None


def get(name: str) -> JobSpec:
    """The job named `name`. One of a plugin created since this process started is found once
    that plugin is (a job can arrive before the periodic check for new plugins has looked)."""
    if name not in current_app.extensions["magnet.jobs"]:
        current_app.extensions["magnet.plugins"].discover_added()
    try:
        return current_app.extensions["magnet.jobs"][name]
    except KeyError:
        raise LookupError(f"no job named {name!r}") from None
