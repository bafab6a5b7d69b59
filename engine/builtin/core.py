"""Core jobs: the outbox sweeper that hands waiting work to the workers."""
from __future__ import annotations

from typing import Any

from engine.jobs import job, outbox
from engine.plugins import hookimpl


@job("outbox.sweep", every=5)
def sweep_outbox() -> int:
    return outbox.sweep()


@hookimpl
def register_jobs() -> list[Any]:
    return [sweep_outbox]
