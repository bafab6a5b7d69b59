"""The jobs runtime: RQ queues, named jobs, the transactional outbox and the worker.

- `job(...)` marks a function as a job; plugins return them from `register_jobs`.
- `outbox.add(name, **payload)` queues work that must survive (inside a `db.write()`).
- `enqueue(name, **kwargs)` queues work that may be redone if lost.
"""
from engine.jobs import outbox
from engine.jobs.connection import available, connection
from engine.jobs.registry import QUEUES, job
from engine.jobs.runner import enqueue

__all__ = ["QUEUES", "available", "connection", "enqueue", "job", "outbox"]
