"""`magnet worker`: RQ's non-forking worker inside the app, plus the periodic-job ticker.

RQ's default worker forks a child per job, which here runs about 50 jobs/s; `SimpleWorker`
runs jobs in its own process (hundreds per second, see `bench/worker_throughput.py`) and keeps
the app, its plugin state and its database pool warm between jobs. Parallelism comes from more
worker processes (`--processes N`, or more machines), not from forking.

Each worker also runs a ticker thread: periodic jobs (`@job(every=...)`) of the core and of
enabled plugins are enqueued at most once per interval across all workers, using a Redis key
with that interval as expiry as the lock, and the ticker keeps the worker's heartbeat key fresh
for `/healthz`.
"""
from __future__ import annotations

import gc
import logging
import os
import socket
import threading
import time
from typing import Any

import redis
from flask import Flask
from rq import Queue, SimpleWorker

from engine.jobs import registry
from engine.jobs.runner import run_named

log = logging.getLogger("magnet.worker")

HEARTBEAT_KEY = "magnet:worker:{}"
HEARTBEAT_TTL = 30
TICK_SECONDS = 0.5


class MagnetWorker(SimpleWorker):
    """Runs each job inside a fresh app context, with the plugin state refreshed first."""

    app: Flask

    def subscribe(self) -> None:
        """No listener on RQ's command channel (commands sent to a running worker: stop a job,
        shut down). Magnet sends none: its workers are stopped by signals (`magnet serve`, a
        process manager, Ctrl-C). And with RQ 3 and redis-py 8.2, stopping that listener waits
        out its minute-long poll whenever it is not subscribed at that moment (always, once
        RQ has unsubscribed it first): a minute added to every stop."""

    def execute_job(self, job: Any, queue: Any) -> Any:
        with self.app.app_context():
            self.app.extensions["magnet.plugins"].refresh()
            return super().execute_job(job, queue)


class Ticker(threading.Thread):
    def __init__(self, app: Flask, conn: redis.Redis, name: str) -> None:
        super().__init__(daemon=True, name="magnet-ticker")
        self.app, self.conn, self.worker_name = app, conn, name
        self.stopping = threading.Event()
        # When each periodic job's lock (held by this worker or another) runs out: nothing to
        # ask Redis before then. Without it every worker asked for every periodic job twice a
        # second, hourly ones included: a steady stream of round trips on an idle site.
        self.locked_until: dict[str, float] = {}

    def run(self) -> None:
        next_beat = 0.0
        while not self.stopping.wait(TICK_SECONDS):
            try:
                now = time.monotonic()
                if now >= next_beat:
                    self.conn.set(HEARTBEAT_KEY.format(self.worker_name), str(time.time()),
                                  ex=HEARTBEAT_TTL)
                    next_beat = now + HEARTBEAT_TTL / 3
                for spec in self.periodic():
                    self.maybe_enqueue(spec)
            except (redis.RedisError, OSError) as exc:
                log.warning("ticker: Redis unavailable: %s", exc)

    def periodic(self) -> list[registry.JobSpec]:
        """The periodic jobs to schedule now: the core's and those of enabled plugins, created
        since start-up included. A disabled plugin's are not even queued."""
        plugins = self.app.extensions["magnet.plugins"]
        with self.app.app_context():
            plugins.refresh()
        return [spec for spec in self.app.extensions["magnet.jobs"].values()
                if spec.every and (not spec.owner or plugins.is_enabled(spec.owner))]

    def maybe_enqueue(self, spec: registry.JobSpec) -> None:
        """Queue `spec` if no worker has within its interval: whoever sets its lock first
        queues it; the lock's time left says when to ask again."""
        now = time.monotonic()
        if now < self.locked_until.get(spec.name, 0.0):
            return
        lock = f"magnet:periodic:{spec.name}"
        with self.conn.pipeline(transaction=False) as pipe:
            pipe.set(lock, self.worker_name, nx=True, px=max(int(spec.every * 1000), 100))
            pipe.pttl(lock)
            taken, left_ms = pipe.execute()
        self.locked_until[spec.name] = now + max(int(left_ms), 0) / 1000
        if taken:
            Queue(spec.queue, connection=self.conn).enqueue(
                run_named, spec.name, {}, result_ttl=0, failure_ttl=86400,
                job_timeout=max(60, int(spec.every * 10)))


def worker_name() -> str:
    return f"{socket.gethostname()}.{os.getpid()}"


def run_worker(app: Flask, conn: redis.Redis, queues: list[str] | None = None,
               burst: bool = False, with_scheduler: bool = True) -> bool:
    """Work the named queues until stopped (or until empty, in burst mode)."""
    queues = queues or list(registry.QUEUES)
    registry.listening = tuple(queues)
    name = worker_name()
    worker = MagnetWorker([Queue(q, connection=conn) for q in queues], connection=conn,
                          name=f"{name}.{time.monotonic_ns() % 100000}")
    worker.app = app
    ticker = None
    if not burst:
        ticker = Ticker(app, conn, name)
        ticker.start()
        # What is loaded by now (the app, SQLAlchemy's metadata, the plugins) lives as long as
        # the worker: kept out of the collector's full passes, which a drain of thousands of
        # events triggers every few seconds, each walking all of it. (Not in burst mode: that
        # runs inside other processes, tests, whose heap is not the worker's to freeze.)
        gc.collect()
        gc.freeze()
    try:
        return worker.work(burst=burst, with_scheduler=with_scheduler and not burst,
                           logging_level="WARNING")
    finally:
        registry.listening = None
        if ticker:
            ticker.stopping.set()
            try:
                conn.delete(HEARTBEAT_KEY.format(name))
            except (redis.RedisError, OSError):
                pass


def live_workers(conn: redis.Redis) -> int:
    """How many workers sent a heartbeat within the last `HEARTBEAT_TTL` seconds."""
    return sum(1 for _ in conn.scan_iter(match=HEARTBEAT_KEY.format("*"), count=100))
