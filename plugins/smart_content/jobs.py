"""The plugin's job: counts from Redis into the report's table, every minute."""
from __future__ import annotations

from engine.jobs import job
from plugins.smart_content import counters


@job("smart_content.flush", queue="events", every=60)
def flush_counts() -> int:
    """Store the views and conversions the web processes counted in Redis."""
    counters.flush()  # this process's own, when it serves pages too (one box)
    return counters.store()


JOBS = [flush_counts]
