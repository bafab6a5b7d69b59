"""The jobs runtime: outbox durability and exactly-once claims, retries, periodic jobs, health."""
from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from rq import Queue
from sqlalchemy import select

from engine.db import db, utcnow, write
from engine.jobs import outbox
from engine.jobs.embedded import EmbeddedRedis
from engine.jobs.outbox import OutboxRow

JOBS = '''
"""Jobs that leave a trace in a file, so a test can count how often each ran."""
from pathlib import Path
from engine.jobs import job
from engine.plugins import hookimpl

DEFAULT_ENABLED = True

@job("trace.append", queue="default")
def append(path, line):
    with open(path, "a") as fh:
        fh.write(line + "\\n")

@job("trace.fail", queue="mail")
def fail(path):
    with open(path, "a") as fh:
        fh.write("tried\\n")
    raise RuntimeError("SMTP said 451, try later")

@job("trace.send", queue="mail")
def send(path, line):
    with open(path, "a") as fh:
        fh.write(line + "\\n")

@hookimpl
def register_jobs():
    return [append, fail, send]
'''


@pytest.fixture
def jobs_app(make_app, make_plugins):
    return make_app(PLUGINS_PATH=str(make_plugins(trace=JOBS)))


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def add_rows(app, path, count, job="trace.append"):
    with app.app_context(), write():
        for i in range(count):
            if job == "trace.append":
                outbox.add(job, path=str(path), line=f"row {i}")
            else:
                outbox.add(job, path=str(path))


@pytest.mark.both_backends
def test_outbox_row_runs_once_after_commit(jobs_app, work, tmp_path):
    trace = tmp_path / "trace.txt"
    add_rows(jobs_app, trace, 3)
    work(jobs_app)
    assert sorted(lines(trace)) == ["row 0", "row 1", "row 2"]
    with jobs_app.app_context():
        assert {r.status for r in db.session.scalars(select(OutboxRow))} == {"done"}


def test_a_mail_batch_job_gives_way_to_a_job_waiting_on_a_queue_ahead(jobs_app, work,
                                                                     tmp_path):
    """Bulk sending hands over between its batches: the waiting job runs before the rest."""
    trace = tmp_path / "trace.txt"
    with jobs_app.app_context(), write():
        for n in range(3):
            outbox.add("trace.send", path=str(trace), line=f"send {n}")
    add_rows(jobs_app, trace, 1)  # a job now waits on "default"
    with jobs_app.app_context():
        assert outbox.run_batch("mail") == 1  # a mail batch claims one row at a time
    conn = jobs_app.extensions["magnet.redis"]
    assert Queue("default", connection=conn).count == 1 and Queue("mail", connection=conn).count
    work(jobs_app)
    assert lines(trace) == ["send 0", "row 0", "send 1", "send 2"]


def test_rolled_back_transaction_queues_nothing(jobs_app, work, tmp_path):
    trace = tmp_path / "trace.txt"
    with jobs_app.app_context():
        with pytest.raises(ZeroDivisionError):
            with write():
                outbox.add("trace.append", path=str(trace), line="never")
                raise ZeroDivisionError
        assert db.session.scalars(select(OutboxRow)).all() == []
    work(jobs_app)
    assert lines(trace) == []


def test_a_batch_job_delivered_twice_acts_once(jobs_app, work, tmp_path):
    trace = tmp_path / "trace.txt"
    add_rows(jobs_app, trace, 2)
    with jobs_app.app_context():
        outbox.wake(["default"], force=True)  # duplicates, as after a sweep racing the commit
        outbox.wake(["default"], force=True)
    work(jobs_app)
    assert sorted(lines(trace)) == ["row 0", "row 1"]


def test_many_rows_are_run_by_few_jobs(jobs_app, work, tmp_path):
    from rq import Queue
    trace = tmp_path / "trace.txt"
    for _ in range(20):  # twenty separate commits, as twenty form submissions would make
        add_rows(jobs_app, trace, 1)
    assert Queue("default", connection=jobs_app.extensions["magnet.redis"]).count == 1
    work(jobs_app)
    assert len(lines(trace)) == 20


@pytest.mark.both_backends
def test_writes_commit_while_redis_is_down_and_run_once_when_it_returns(
        make_app, make_plugins, work, tmp_path):
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    app = make_app(PLUGINS_PATH=str(make_plugins(trace=JOBS)), REDIS_URL=server.url)
    trace = tmp_path / "trace.txt"
    try:
        server.stop()
        add_rows(app, trace, 5)  # must not raise: the rows wait
        with app.app_context():
            assert [r.status for r in db.session.scalars(select(OutboxRow))] == ["pending"] * 5
            assert outbox.sweep() == 0  # Redis still down: nothing handed over, nothing lost
        server.start()
        with app.app_context():
            assert outbox.sweep() == 5
            assert outbox.sweep() == 5  # still due, but the queue is not woken twice
        assert Queue("default", connection=app.extensions["magnet.redis"]).count == 1
        work(app)
        work(app)
        assert sorted(lines(trace)) == [f"row {i}" for i in range(5)]
    finally:
        server.stop()


def test_failures_retry_with_backoff_then_show_as_failed_and_can_be_requeued(
        make_app, make_plugins, work, tmp_path):
    app = make_app(PLUGINS_PATH=str(make_plugins(trace=JOBS)), OUTBOX_MAX_ATTEMPTS=2)
    trace = tmp_path / "trace.txt"
    add_rows(app, trace, 1, job="trace.fail")
    work(app)
    with app.app_context():
        row = db.session.scalars(select(OutboxRow)).one()
        assert (row.status, row.attempts) == ("pending", 1)
        assert "451" in row.last_error
        assert row.available_at > utcnow() + timedelta(seconds=3)  # backed off
        assert outbox.run_batch("mail") == 0  # not due yet
        with write():
            row.available_at = utcnow()
        assert outbox.run_batch("mail") == 1  # second and last attempt
        assert db.session.get(OutboxRow, row.id, populate_existing=True).status == "failed"
    assert lines(trace) == ["tried", "tried"]
    from engine.cli import main
    runner = app.test_cli_runner()
    listing = runner.invoke(main, ["jobs"])
    assert "failed 1" in listing.output and "trace.fail after 2 attempts" in listing.output
    assert "Requeued 0 failed job(s) and 1 failed outbox row(s)" in runner.invoke(
        main, ["jobs", "requeue"]).output
    with app.app_context():
        assert db.session.scalars(select(OutboxRow)).one().status == "pending"


def test_a_crashed_workers_row_is_picked_up_after_its_lease(jobs_app, work, tmp_path):
    trace = tmp_path / "trace.txt"
    add_rows(jobs_app, trace, 1)
    conn = jobs_app.extensions["magnet.redis"]
    Queue("default", connection=conn).empty()
    conn.delete(outbox.WAKE_KEY.format("default"))  # as the batch job does when it starts
    with jobs_app.app_context():
        [row] = outbox.claim_batch("default")  # then the worker died
        assert row.status == "running"
        assert outbox.sweep() == 0  # its lease has not expired yet
        with write():
            row.claimed_at = utcnow() - timedelta(hours=1)
        assert outbox.sweep() == 1
    work(jobs_app)
    assert lines(trace) == ["row 0"]


def test_periodic_job_runs_once_per_interval_across_workers(jobs_app):
    from engine.jobs.worker import Ticker
    conn = jobs_app.extensions.get("magnet.redis") or __import__(
        "engine.jobs.connection", fromlist=["client_for"]).client_for(jobs_app)
    tickers = [Ticker(jobs_app, conn, f"w{i}") for i in range(3)]
    sweep = jobs_app.extensions["magnet.jobs"]["outbox.sweep"]
    for ticker in tickers:
        ticker.maybe_enqueue(sweep)
    assert Queue("default", connection=conn).count == 1


def test_a_ticker_asks_redis_about_a_periodic_job_once_per_interval(jobs_app, monkeypatch):
    """Once a periodic job's lock is taken (by this worker or another), a worker's ticker
    does not ask Redis about it again until the lock runs out."""
    from engine.jobs.connection import client_for
    from engine.jobs.worker import Ticker
    conn = client_for(jobs_app)
    sweep = jobs_app.extensions["magnet.jobs"]["outbox.sweep"]  # every 5 s
    one, two = Ticker(jobs_app, conn, "w1"), Ticker(jobs_app, conn, "w2")
    # The questions counted as this client sends them: the server's own count of SETs takes in
    # every other client's, such as the tests running beside this one on a shared Redis.
    asked: list[str] = []
    pipeline = conn.pipeline

    def counting_pipeline(*args, **kwargs):
        pipe = pipeline(*args, **kwargs)
        send_set = pipe.set

        def set_(name, *set_args, **set_kwargs):
            if str(name).startswith("magnet:periodic:"):
                asked.append(str(name))
            return send_set(name, *set_args, **set_kwargs)
        pipe.set = set_
        return pipe
    monkeypatch.setattr(conn, "pipeline", counting_pipeline)

    for _ in range(20):
        one.maybe_enqueue(sweep)
        two.maybe_enqueue(sweep)
    assert len(asked) == 2  # one question each, then each knows the lock's time left
    assert Queue("default", connection=conn).count == 1
    assert one.locked_until["outbox.sweep"] > time.monotonic() + sweep.every / 2


def test_healthz_counts_live_workers(jobs_app):
    from engine.jobs.connection import client_for
    from engine.jobs.worker import HEARTBEAT_KEY
    conn = client_for(jobs_app)
    conn.set(HEARTBEAT_KEY.format("host.123"), "1", ex=30)
    body = jobs_app.test_client().get("/healthz").get_json()
    assert body == {"database": "ok", "redis": "ok", "workers": 1, "status": "ok"}


def test_healthz_is_degraded_not_down_without_redis(make_app, tmp_path):
    app = make_app(REDIS_URL=f"unix://{tmp_path}/nothing.sock")
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "degraded"


def test_hook_register_jobs(jobs_app):
    jobs = jobs_app.extensions["magnet.jobs"]
    assert (jobs["trace.append"].owner, jobs["trace.append"].queue) == ("trace", "default")
    assert (jobs["trace.fail"].owner, jobs["trace.fail"].queue) == ("trace", "mail")
    assert jobs["outbox.sweep"].every == 5  # the engine's own, from its built-in plugin


def test_a_disabled_plugins_rows_wait_and_run_once_it_is_back(make_app, make_plugins, work,
                                                              tmp_path):
    app = make_app(PLUGINS_PATH=str(make_plugins(trace=JOBS.replace(
        "DEFAULT_ENABLED = True", "DEFAULT_ENABLED = False"))))
    plugins = app.extensions["magnet.plugins"]
    plugins.set_enabled("trace", True)
    trace = tmp_path / "trace.txt"
    add_rows(app, trace, 1)
    plugins.set_enabled("trace", False)
    work(app)
    assert lines(trace) == []
    with app.app_context():
        row = db.session.scalars(select(OutboxRow)).one()
        assert (row.status, row.attempts) == ("pending", 0)  # waiting, no attempt spent
        plugins.set_enabled("trace", True)
        with write():
            row.available_at = utcnow()
        assert outbox.run_batch("default") == 1
    assert lines(trace) == ["row 0"]


def test_a_batch_hands_back_rows_near_the_end_of_their_lease(make_app, make_plugins, tmp_path):
    app = make_app(PLUGINS_PATH=str(make_plugins(trace=JOBS)), OUTBOX_LEASE_SECONDS=2)
    trace = tmp_path / "trace.txt"
    add_rows(app, trace, 3)
    with app.app_context():
        rows = outbox.claim_batch("default")
        with write():
            for row in rows[1:]:  # as if the first row had taken most of the lease
                row.claimed_at = utcnow() - timedelta(seconds=1.5)
        assert outbox.run_claimed(rows) == 1
        statuses = {r.id: r.status for r in db.session.scalars(
            select(OutboxRow).execution_options(populate_existing=True))}
    assert lines(trace) == ["row 0"]
    assert sorted(statuses.values()) == ["done", "pending", "pending"]


def test_a_periodic_job_never_overlaps_its_previous_run(jobs_app):
    from engine.jobs.connection import client_for
    from engine.jobs.runner import run_named
    conn = client_for(jobs_app)
    with jobs_app.app_context():
        conn.set("magnet:running:outbox.sweep", "1")  # a run still going elsewhere
        assert run_named("outbox.sweep", {}) is None
        conn.delete("magnet:running:outbox.sweep")
        assert run_named("outbox.sweep", {}) == 0
        assert conn.get("magnet:running:outbox.sweep") is None


QUIET = '''
from engine.jobs import job
from engine.plugins import hookimpl

@job("quiet.tick", every=3)
def tick():
    pass

@hookimpl
def register_jobs():
    return [tick]
'''


def test_a_disabled_plugins_periodic_jobs_are_not_queued(make_app, make_plugins):
    from engine.jobs.connection import client_for
    from engine.jobs.worker import Ticker
    app = make_app(PLUGINS_PATH=str(make_plugins(quiet=QUIET)), PLUGIN_STATE_REFRESH_SECONDS=0)
    conn = client_for(app)
    ticker = Ticker(app, conn, "test")

    def queued() -> list[str]:
        for spec in ticker.periodic():
            ticker.maybe_enqueue(spec)
        return [job.args[0] for name in ("default", "mail", "events")
                for job in Queue(name, connection=conn).jobs]

    assert "outbox.sweep" in queued() and "quiet.tick" not in queued()
    app.extensions["magnet.plugins"].set_enabled("quiet", True)
    assert "quiet.tick" in queued()
