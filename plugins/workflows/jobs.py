"""The plugin's jobs: running due steps and date timers, rebuilding timers, enrolling a segment,
posting webhooks."""
from __future__ import annotations

import time

from engine.jobs import job
from plugins.workflows import dates, manual, runner, steps

RUN_SECONDS = 20.0  # a run hands over to the next tick after this long


@job("workflows.run_due", every=2, runs=4)
def run_due() -> int:
    """Run due steps and date timers, batch after batch, until none is due or the time is up
    (the next tick, two seconds on, takes over). Up to four runs overlap, on as many
    workers: on PostgreSQL each claims other rows (`SKIP LOCKED`); on SQLite they take turns
    at the write lock. Returns how many rows ran."""
    deadline, total = time.monotonic() + RUN_SECONDS, 0
    while time.monotonic() < deadline:
        ran = runner.run_batch() + dates.run_timers()
        if not ran:
            break
        total += ran
    return total


@job("workflows.date_timers")
def date_timers(workflow_id: int) -> int:
    return dates.rebuild(workflow_id)


@job("workflows.enrol_segment")
def enrol_segment(workflow_id: int, segment_id: int, by: str) -> int:
    return manual.enrol_segment(workflow_id, segment_id, by).enrolled


@job("workflows.webhook")
def webhook(enrolment_id: int, step: str, url: str) -> None:
    steps.post_webhook(enrolment_id, step, url)


JOBS = [run_due, date_timers, enrol_segment, webhook]
