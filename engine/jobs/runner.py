"""The functions RQ runs. They look jobs up by name in the worker's app (see `registry`)."""
from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from rq import Queue, Retry

from engine.jobs import outbox, registry
from engine.jobs.connection import connection

log = logging.getLogger("magnet.jobs")


def _owner_enabled(spec: registry.JobSpec) -> bool:
    plugins = current_app.extensions["magnet.plugins"]
    return not spec.owner or plugins.is_enabled(spec.owner)


def run_outbox_batch(queue: str) -> int:
    """What jobs queued by earlier versions name (the outbox now enqueues `run_batch`)."""
    return outbox.run_batch(queue)


def run_named(name: str, kwargs: dict[str, Any]) -> Any:
    spec = registry.get(name)
    if not _owner_enabled(spec):
        log.info("job %s skipped: plugin %r is disabled", name, spec.owner)
        return None
    if not spec.every:
        return spec.func(**kwargs)
    # A periodic run that outlasts its interval must not overlap the next one (or no more
    # than `spec.runs` of them: one slot each).
    conn = connection()
    for slot in range(spec.runs):
        lock = f"magnet:running:{name}" + (f":{slot}" if slot else "")
        if conn.set(lock, "1", nx=True, ex=max(60, int(spec.every * 10))):
            break
    else:
        log.info("job %s skipped: its previous runs are still going", name)
        return None
    try:
        return spec.func(**kwargs)
    finally:
        conn.delete(lock)


def enqueue(name: str, **kwargs: Any) -> Any:
    """Run a job soon on its queue, retried with back-off; for work that may be lost with
    Redis (caches, roll-ups). Work that must survive goes through `outbox.add()`."""
    spec = registry.get(name)
    queue = Queue(spec.queue, connection=connection())
    return queue.enqueue(run_named, name, kwargs, retry=Retry(max=3, interval=[5, 30, 120]),
                         result_ttl=60, failure_ttl=7 * 86400)


def enqueue_once(wake_key: str, func: Any, *, force: bool = False, queue: str = "events",
                 ttl: int = 60) -> None:
    """Enqueue `func` (a job that drains a queue of work kept in the database) unless one is
    already waiting: the caller that sets `wake_key` enqueues it, the job deletes the key as it
    begins, so a burst of wake-ups gives one job. `force`: enqueue anyway (a job handing over
    to a fresh one). Raises Redis's errors; the callers' sweeps cover a lost wake."""
    conn = connection()
    if conn.set(wake_key, "1", nx=True, ex=ttl) or force:
        Queue(queue, connection=conn).enqueue(func, result_ttl=0, failure_ttl=7 * 86400,
                                              job_timeout=600)
