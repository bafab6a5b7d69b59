"""`magnet worker`, with each event delivery timed, for `bench/segments.py incremental`.

The worker is the engine's own (`python -m engine.cli worker`), unchanged but for a timer
around `engine.events.delivery.deliver_next`: each call that delivered a batch appends a line
`<wall-clock start> <wall-clock end> <events>` to the file named by `BENCH_DELIVERY_LOG`. That
gives, from outside the process, when delivery began and ended and how long each batch took,
which the worker does not record by itself. The timer costs a few microseconds per batch.

    BENCH_DELIVERY_LOG=/tmp/deliveries.log python -m bench.timed_worker
"""
from __future__ import annotations

import os
import time
from typing import Any

from engine.events import delivery


def timed(original: Any, path: str) -> Any:
    def deliver_next(start: int = 0) -> tuple[int, int]:
        began = time.time()
        delivered, following = original(start)
        if delivered:
            with open(path, "a") as log:
                log.write(f"{began:.6f} {time.time():.6f} {delivered}\n")
        return delivered, following
    return deliver_next


def main() -> None:
    from engine.cli import main as magnet
    delivery.deliver_next = timed(delivery.deliver_next, os.environ["BENCH_DELIVERY_LOG"])
    magnet(["worker"], prog_name="magnet")


if __name__ == "__main__":
    main()
