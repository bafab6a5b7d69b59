"""RQ's default forking `Worker`, the comparison point for `magnet worker` in
`bench/worker_throughput.py`.

It is what a Flask project gets from RQ out of the box: each job runs in a freshly forked
child, which here gets the same app context and plugin refresh that `magnet worker` gives its
jobs, so the two differ only in forking. Runs until stopped (SIGTERM):
`python -m bench.forking_worker QUEUE...` with `MAGNET_INSTANCE_PATH` and `REDIS_URL` set.
"""
from __future__ import annotations

import sys
from typing import Any

from rq import Queue, Worker

from engine import create_app
from engine.jobs.connection import client_for


class AppForkingWorker(Worker):
    def perform_job(self, job: Any, queue: Any, execution: Any) -> bool:
        with self.app.app_context():
            self.app.extensions["magnet.plugins"].refresh()
            return super().perform_job(job, queue, execution)


def main() -> None:
    app = create_app()
    conn = client_for(app)
    worker = AppForkingWorker([Queue(name, connection=conn) for name in sys.argv[1:]],
                              connection=conn)
    worker.app = app
    worker.work(logging_level="WARNING")


if __name__ == "__main__":
    main()
