"""The plugin's periodic jobs: draining the event buffer every second, pruning once a day."""
from __future__ import annotations

from engine.jobs import job
from plugins.tracking import buffer, handover, retention


@job("tracking.drain", queue="events", every=1)
def drain_events() -> int:
    """Store what the beacon queued (events are stored within about two seconds)."""
    handover.pending_here().flush()  # a process that serves beacons too (tests, a single box)
    return buffer.drain()


@job("tracking.prune", queue="events", every=86400)
def prune_anonymous() -> dict[str, int]:
    """Delete anonymous visitors' tracking data older than the retention setting."""
    return retention.prune()
