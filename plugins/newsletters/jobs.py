"""The plugin's one periodic job: start campaigns whose time came, decide A/B tests whose wait
is over, release due recipients into the send ledger, and mark finished campaigns sent."""
from __future__ import annotations

import time

from engine.jobs import job
from plugins.newsletters import decisions, service

RUN_SECONDS = 20.0  # a run hands over to the next tick after this long


@job("newsletters.tick", every=2)
def tick() -> int:
    """One pass; returns how many recipients were released. Every two seconds, so a due
    recipient waits at most a few seconds for the send ledger (the mail workers then send
    batches as fast as the transport allows)."""
    service.start_due()
    decisions.decide_due()
    deadline, released = time.monotonic() + RUN_SECONDS, 0
    while time.monotonic() < deadline:
        count = service.release_due()
        if not count:
            break
        released += count
    service.finish_done()
    return released


JOBS = [tick]
