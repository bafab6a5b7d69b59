"""Workflows: many waits ending at once, an event's first email, and steps per second.

    python bench/workflows.py due [--backend sqlite|postgresql] [--contacts N] [--workers W]
                                  [--next email|tag] [--enrol real|bulk]
    python bench/workflows.py trigger [--backend ...] [--rate R] [--seconds S] [--workers W]
    python bench/workflows.py steps [--backend ...] [--enrolments N]
    python bench/workflows.py profile [--backend ...] [--rows N]

Each part runs on a site of its own: SQLite in a fresh instance folder with its embedded Redis,
or (`--backend postgresql`) a database of its own, `--database-name` (default
`magnet_bench_workflows`: give another when several runs share a server), created on the
server of `--database-url` / `MAGNET_BENCH_DATABASE_URL` (default
`postgresql://postgres@127.0.0.1/postgres`) and dropped afterwards, with the Redis of
`--redis-url` / `MAGNET_BENCH_REDIS_URL` (default `redis://127.0.0.1:6379/7`; that database is
emptied before and after). Contacts are inserted in bulk; workflows are saved and published
through the plugin's service; workers are `magnet worker` processes, with an SMTP sink
(`bench/smtp_sink.py`) receiving the emails they send.

- `due`: N contacts enrolled in "wait 2 minutes, then an email" (or a tag: `--next tag`),
  through `manual.enrol_contacts` (the real path, timed as a note) or, with `--enrol bulk`,
  by inserting the enrolments and due rows with SQL. The workers are started and the setup's
  events delivered; then every due row is set to end at one moment T, a few seconds on, and the
  clock runs until no due row is left. A step's lateness is when it ran less its `due_at`
  (the wait's history row): for an email, when it was put into the send ledger (the ledger
  row's `created_at`, written as its batch ends, just before the commit); for a tag, its
  history row's `at`, the batch's start. Target: p99 lateness < 30 s.
- `trigger`: `form_submitted` events recorded at a steady rate, each in its own transaction
  (as a submission does), for a workflow whose first step is an email. Latency: the ledger
  row's `created_at` less the event's `occurred_at`. Target: p99 < 5 s. Meanwhile what the
  workers run and how many events wait are sampled every 0.2 s (`Sampler`): the line
  "workers' time" says where the latency went.
- `steps`: N enrolments waiting before a chain of seven non-email steps (tag, set field, if,
  split, tag, set field, untag) come due at once, and `runner.run_batch()` runs them in this
  process, batch after batch, as one worker's `workflows.run_due` does (without the event
  deliveries a worker would also do). Target: >= 2,000 steps/s.
- `profile`: cProfile of one `run_batch()` over `--rows` due rows (email and chain), and of
  one event delivery enrolling `--rows` contacts; the top functions go to
  `bench/results/workflows_profile.txt`.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `engine` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select, update

from bench.harness import (
    RESULTS,
    ROOT,
    Report,
    Service,
    free_port,
    print_targets,
    pythonpath,
    stop_on_sigterm,
    wait_until,
)
from engine import create_app
from engine.contacts.models import Contact
from engine.db import db, utcnow, write
from engine.events.models import Activity
from engine.jobs.embedded import EmbeddedRedis
from engine.mail.models import EmailTemplate, Mailing, MailSend

DEFAULT_URL = "postgresql://postgres@127.0.0.1/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/7"
DATABASE = "magnet_bench_workflows"
SITE = "https://acme.example"
TARGET_LATE_S, TARGET_TRIGGER_S, TARGET_STEPS = 30.0, 5.0, 2000.0
WAIT_MINUTES = 2


# --- the site -----------------------------------------------------------------------------------

class Site:
    """A migrated site on SQLite or PostgreSQL, its Redis, an SMTP sink; workers on demand."""

    def __init__(self, options: argparse.Namespace, sink: bool = True) -> None:
        self.backend, self.sink = options.backend, sink
        self.database = options.database_name
        self.server = options.database_url or os.environ.get("MAGNET_BENCH_DATABASE_URL",
                                                             DEFAULT_URL)
        self.redis_url = options.redis_url or os.environ.get("MAGNET_BENCH_REDIS_URL",
                                                             DEFAULT_REDIS)
        self.instance = Path(tempfile.mkdtemp(prefix="magnet-bench-wf-"))
        self.embedded = EmbeddedRedis(self.instance) if self.backend == "sqlite" else None
        self.services: list[Service] = []
        self.env: dict[str, str] = {"MAGNET_INSTANCE_PATH": str(self.instance),
                                    "PYTHONPATH": pythonpath(), "MAGNET_SITE_URL": SITE,
                                    "MAGNET_MAIL_FROM": "Acme <news@acme.example>"}
        self.config: dict[str, Any] = {"SITE_URL": SITE, "MAIL_FROM": "Acme <news@acme.example>"}
        self.app: Any = None

    def __enter__(self) -> Site:
        try:
            if self.embedded is not None:
                self.embedded.start()
                self.env["REDIS_URL"] = self.embedded.url
            else:
                from bench.contacts_list import psycopg_url, recreate
                recreate(self.server, database=self.database)
                self._flush_redis()
                self.env["REDIS_URL"] = self.redis_url
                self.env["DATABASE_URL"] = psycopg_url(self.server, self.database)
                self.config["SQLALCHEMY_DATABASE_URI"] = self.env["DATABASE_URL"]
            self.config["REDIS_URL"] = self.env["REDIS_URL"]
            if self.sink:
                port, counted = free_port(), self.instance / "sink-count"
                self.services.append(Service("smtp-sink", [
                    sys.executable, "-m", "bench.smtp_sink", str(port), str(counted)]).start())
                wait_until(lambda: counted.exists(), 30, "the SMTP sink")
                self.env.update(MAGNET_MAIL_HOST="127.0.0.1", MAGNET_MAIL_PORT=str(port))
                self.config.update(MAIL_HOST="127.0.0.1", MAIL_PORT=port)
            subprocess.run([sys.executable, "-m", "engine.cli", "db", "upgrade"], cwd=ROOT,
                           env={**os.environ, **self.env}, check=True, capture_output=True)
            self.app = create_app(self.config, instance_path=self.instance)
        except BaseException:
            self.__exit__()
            raise
        return self

    def workers(self, count: int) -> list[Service]:
        started = [Service(f"wf-worker{n}", [sys.executable, "-m", "engine.cli", "worker"],
                           self.env).start() for n in range(count)]
        self.services.extend(started)
        return started

    def _flush_redis(self) -> None:
        import redis
        redis.Redis.from_url(self.redis_url).flushdb()

    def __exit__(self, *_exc: Any) -> None:
        for service in reversed(self.services):
            service.stop()
        self.services.clear()
        if self.app is not None:
            with self.app.app_context():
                db.session.remove()
                db.engine.dispose()
        if self.embedded is not None:
            self.embedded.stop()
        else:
            from bench.contacts_list import recreate
            self._flush_redis()
            recreate(self.server, drop_only=True, database=self.database)
        shutil.rmtree(self.instance, ignore_errors=True)


def make_contacts(count: int) -> list[int]:
    """`count` active contacts with an address, inserted in bulk (in an app context)."""
    now, table, ids = utcnow(), Contact.__table__, []
    first = (db.session.scalar(select(func.max(Contact.id))) or 0) + 1
    for start in range(first, first + count, 5000):
        with write() as session:
            ids += session.connection().execute(insert(table).returning(table.c.id), [
                {"email": f"person{n}@example.com", "first_name": f"Person{n}",
                 "last_name": "", "phone": "", "job_title": "", "country": "",
                 "lifecycle_stage": "lead", "custom": {}, "consent": "granted",
                 "consent_proof": {}, "first_touch": {}, "last_touch": {},
                 "status": "active", "created_at": now, "updated_at": now}
                for n in range(start, min(first + count, start + 5000))]).scalars().all()
    return ids


def make_template() -> int:
    with write() as session:
        found = EmailTemplate(name="Drip", subject="Hello {{ contact.first_name }}",
                              body="Hello {{ contact.first_name }}, a tip for today.")
        session.add(found)
        session.flush()
        return found.id


def make_workflow(name: str, trigger: dict[str, Any], steps: dict[str, Any]) -> Any:
    from plugins.workflows import service
    return service.publish(service.create(name, trigger=trigger, steps=steps))


def wait_then(next_kind: str, template_id: int) -> dict[str, Any]:
    """Wait two minutes, then an email (or a tag)."""
    then = ({"kind": "send_email", "template_id": template_id} if next_kind == "email"
            else {"kind": "tag", "action": "add", "tag": "nurtured"})
    return {"start": "w", "steps": {
        "w": {"kind": "wait", "mode": "duration", "minutes": WAIT_MINUTES, "next": "n"},
        "n": then}}


CHAIN = {"start": "w", "steps": {
    "w": {"kind": "wait", "mode": "duration", "minutes": WAIT_MINUTES, "next": "t1"},
    "t1": {"kind": "tag", "action": "add", "tag": "hot", "next": "f1"},
    "f1": {"kind": "set_field", "field": "job_title", "value": "Director", "next": "i1"},
    "i1": {"kind": "if", "condition": {"match": "all", "conditions": [
        {"kind": "tag", "tag": "hot", "op": "has"}]}, "yes": "sp", "no": ""},
    "sp": {"kind": "split", "paths": [{"label": "A", "share": 50, "next": "ta"},
                                      {"label": "B", "share": 50, "next": "tb"}]},
    "ta": {"kind": "tag", "action": "add", "tag": "path-a", "next": "f2"},
    "tb": {"kind": "tag", "action": "add", "tag": "path-b", "next": "f2"},
    "f2": {"kind": "set_field", "field": "country", "value": "GB", "next": "t2"},
    "t2": {"kind": "tag", "action": "remove", "tag": "hot"},
}}
CHAIN_STEPS = 7  # run after the wait, per enrolment


def enrol_real(workflow: Any, ids: list[int]) -> float:
    """`manual.enrol_contacts` (each contact's first steps run: the wait starts); seconds."""
    from plugins.workflows import manual
    began = time.perf_counter()
    result = manual.enrol_contacts(workflow, ids, "enrolled by the benchmark")
    assert result.enrolled == len(ids), result
    return time.perf_counter() - began


def enrol_bulk(workflow: Any, ids: list[int]) -> float:
    """The same rows `enrol_contacts` leaves (an enrolment at the wait, its due row, the
    wait's start in no history: a wait writes history when it ends), inserted with SQL."""
    from plugins.workflows.models import DueStep, Enrolment
    began, now = time.perf_counter(), utcnow()
    due = now + timedelta(minutes=WAIT_MINUTES)
    enrolments, rows = Enrolment.__table__, DueStep.__table__
    for start in range(0, len(ids), 5000):
        chunk = ids[start:start + 5000]
        with write() as session:
            made = session.connection().execute(
                insert(enrolments).returning(enrolments.c.id, enrolments.c.contact_id), [
                    {"workflow_id": workflow.id, "contact_id": cid, "version": workflow.version,
                     "status": "active", "step": "w", "reason": "enrolled by the benchmark",
                     "exit_reason": "", "entered_at": now, "step_at": now, "test": False,
                     "tester": ""} for cid in chunk]).all()
            session.connection().execute(insert(rows), [
                {"enrolment_id": eid, "workflow_id": workflow.id, "contact_id": cid,
                 "step": "w", "due_at": due, "waiting": True, "watching": False,
                 "held": "waiting"} for eid, cid in made])
    return time.perf_counter() - began


def due_left(workflow_id: int) -> int:
    from plugins.workflows.models import DueStep
    left = db.session.scalar(select(func.count()).select_from(DueStep).where(
        DueStep.workflow_id == workflow_id)) or 0
    db.session.rollback()
    return int(left)


def settle(timeout: float = 900.0) -> float:
    """Wait until every recorded event is delivered; seconds waited."""
    from engine.events.delivery import pending
    began = time.monotonic()

    def delivered() -> bool:
        left = pending()
        db.session.rollback()
        return left == 0
    wait_until(delivered, timeout, "the events to be delivered")
    return time.monotonic() - began


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)
    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": round(ordered[-1], 3),
            "mean": round(statistics.fmean(ordered), 3), "count": len(ordered)}


# --- due: many waits ending at once -------------------------------------------------------------

def due(options: argparse.Namespace) -> None:
    from plugins.workflows.models import DueStep, StepRun
    with Site(options) as site, site.app.app_context():
        print(f"{options.backend}: {options.contacts:,} contacts, wait then {options.next}, "
              f"{options.workers} worker(s)", flush=True)
        began = time.perf_counter()
        ids = make_contacts(options.contacts)
        made_contacts = time.perf_counter() - began
        workflow = make_workflow("Drip", {"kind": "manual"},
                                 wait_then(options.next, make_template()))
        enrol = enrol_real if options.enrol == "real" else enrol_bulk
        enrol_seconds = enrol(workflow, ids)
        print(f"  contacts inserted in {made_contacts:.1f} s; enrolled ({options.enrol}) in "
              f"{enrol_seconds:.1f} s ({len(ids) / enrol_seconds:,.0f}/s)", flush=True)
        with write():  # nothing comes due while the workers start and deliver the setup
            db.session.execute(update(DueStep).where(DueStep.workflow_id == workflow.id)
                               .values(due_at=utcnow() + timedelta(hours=1)))
        workers = site.workers(options.workers)
        settled = settle()
        print(f"  workers started; setup events delivered in {settled:.1f} s", flush=True)
        moment = utcnow() + timedelta(seconds=5)
        with write():
            db.session.execute(update(DueStep).where(DueStep.workflow_id == workflow.id)
                               .values(due_at=moment))
        wait_until(lambda: due_left(workflow.id) == 0, options.timeout,
                   "every due step to run", lambda: all(w.alive() for w in workers))
        finished = utcnow()
        rows = db.session.execute(select(StepRun.enrolment_id, StepRun.step, StepRun.at,
                                         StepRun.due_at).where(
            StepRun.workflow_id == workflow.id)).all()
        queued = dict(db.session.execute(select(MailSend.occurrence, MailSend.created_at)).all())
        ledger = len(queued)
        db.session.rollback()
    ended = [r for r in rows if r.step == "w"]
    ran_at = ({r.enrolment_id: queued.get(f"e{r.enrolment_id}") for r in ended}
              if options.next == "email" else
              {r.enrolment_id: r.at for r in rows if r.step == "n"})
    lateness = percentiles([(ran_at[r.enrolment_id] - r.due_at).total_seconds()
                            for r in ended if ran_at.get(r.enrolment_id)])
    last = max(r.at for r in rows)
    span = (last - moment).total_seconds()
    rate = len(rows) / span if span > 0 else float("inf")
    print(f"  {len(ended):,} waits ended, {len(rows):,} steps run, {ledger:,} emails in the "
          f"ledger; all done {(finished - moment).total_seconds():.1f} s after T "
          f"(last step's batch began at T+{span:.1f} s): {rate:,.0f} steps/s", flush=True)
    print(f"  lateness (s): {lateness}", flush=True)
    print(f"  (the waits' history rows, `at` less `due_at`: "
          f"{percentiles([(r.at - r.due_at).total_seconds() for r in ended])})", flush=True)
    name = f"workflows_due_{options.backend}_{options.next}"
    report = Report(name, f"{options.contacts:,} waits ending at once, then {options.next}",
                    {"backend": options.backend, "contacts": options.contacts,
                     "workers": options.workers, "next": options.next,
                     "enrol": options.enrol})
    report.target(f"p99 lateness of the steps, s ({options.backend}, {options.workers} "
                  "worker(s))", lateness.get("p99", float("inf")), f"< {TARGET_LATE_S:g}",
                  lateness.get("p99", float("inf")) < TARGET_LATE_S)
    report.target("every step ran", lateness.get("count", 0), f"= {options.contacts}",
                  lateness.get("count", 0) == options.contacts)
    report.extra.update(lateness_s=lateness, steps_run=len(rows), ledger_rows=ledger,
                        steps_per_s=round(rate, 1), span_s=round(span, 2),
                        contacts_insert_s=round(made_contacts, 2),
                        enrol_s=round(enrol_seconds, 2),
                        enrol_per_s=round(len(ids) / enrol_seconds, 1),
                        setup_delivery_s=round(settled, 1))
    print_targets(report, report.write())


# --- trigger: an event's first email ------------------------------------------------------------

class Sampler(threading.Thread):
    """What the workers are running, and how many events wait, every 0.2 s: where a trigger's
    latency goes (delivering the events, or waiting behind other jobs)."""

    def __init__(self, app: Any) -> None:
        super().__init__(daemon=True)
        self.app, self.stopping = app, threading.Event()
        self.jobs: dict[str, int] = defaultdict(int)
        self.backlog: list[int] = []

    def run(self) -> None:
        import redis
        from rq import Worker
        from rq.exceptions import NoSuchJobError

        from engine.events.delivery import pending
        with self.app.app_context():
            conn = redis.Redis.from_url(self.app.config["REDIS_URL"])
            while not self.stopping.wait(0.2):
                for worker in Worker.all(connection=conn):
                    try:
                        job = worker.get_current_job()
                    except NoSuchJobError:  # it ended as we looked (results are not kept)
                        job = None
                    self.jobs[_job_name(job) if job else "idle"] += 1
                self.backlog.append(pending())
                db.session.rollback()

    def summary(self) -> str:
        total = sum(self.jobs.values()) or 1
        shares = ", ".join(f"{name} {count / total:.0%}" for name, count in
                           sorted(self.jobs.items(), key=lambda kv: -kv[1]))
        return (f"workers' time: {shares}; events waiting: max {max(self.backlog, default=0)}, "
                f"mean {statistics.fmean(self.backlog or [0]):.0f}")


def _job_name(job: Any) -> str:
    name = job.func_name.rsplit(".", 1)[-1]
    return f"{name}({job.args[0]})" if job.args and isinstance(job.args[0], str) else name


def trigger(options: argparse.Namespace) -> None:
    from engine import events
    count = int(options.rate * options.seconds)
    with Site(options) as site, site.app.app_context():
        print(f"{options.backend}: form_submitted at {options.rate:g}/s for {options.seconds:g} s "
              f"({count:,} events), {options.workers} worker(s)", flush=True)
        ids = make_contacts(count)
        make_workflow("Welcome", {"kind": "form_submitted", "form": "demo"}, {
            "start": "e", "steps": {
                "e": {"kind": "send_email", "template_id": make_template(), "next": "w"},
                "w": {"kind": "wait", "mode": "duration", "minutes": 60 * 24, "next": ""}}})
        site.workers(options.workers)
        settle()
        sampler = Sampler(site.app)
        sampler.start()
        began = time.monotonic()
        for n, contact_id in enumerate(ids):
            pause = began + n / options.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            with write():
                events.record("form_submitted", contact_id=contact_id,
                              properties={"form": "demo", "submission_id": n})
        behind = time.monotonic() - began - options.seconds
        print(f"  recorded ({behind:+.1f} s against the schedule); waiting for the emails",
              flush=True)

        def queued() -> int:
            found = db.session.scalar(select(func.count()).select_from(MailSend)) or 0
            db.session.rollback()
            return int(found)
        wait_until(lambda: queued() >= count, options.timeout, "every first email")
        sampler.stopping.set()
        sampler.join()
        print(f"  {sampler.summary()}", flush=True)
        rows = db.session.execute(
            select(MailSend.created_at, Activity.occurred_at)
            .join(Mailing, Mailing.id == MailSend.mailing_id)
            .join(Activity, (Activity.contact_id == MailSend.contact_id)
                  & (Activity.type == "form_submitted"))).all()
        db.session.rollback()
    latency = percentiles([(r.created_at - r.occurred_at).total_seconds() for r in rows])
    print(f"  event -> first email in the ledger (s): {latency}", flush=True)
    report = Report(f"workflows_trigger_{options.backend}",
                    "form_submitted -> the workflow's first email in the ledger",
                    {"backend": options.backend, "rate": options.rate,
                     "seconds": options.seconds, "workers": options.workers})
    report.target("p99 event -> first email queued, s", latency.get("p99", float("inf")),
                  f"< {TARGET_TRIGGER_S:g}", latency.get("p99", float("inf")) < TARGET_TRIGGER_S)
    report.extra.update(latency_s=latency, recording_behind_s=round(behind, 2),
                        workers=sampler.summary())
    print_targets(report, report.write())


# --- steps: a chain of non-email steps, in this process ----------------------------------------

def chain_site(options: argparse.Namespace, count: int, steps: dict[str, Any]) -> Any:
    """Contacts enrolled (bulk) in a workflow of `steps`, every wait over now."""
    from plugins.workflows.models import DueStep
    ids = make_contacts(count)
    workflow = make_workflow(f"Chain {steps['start']}", {"kind": "manual"}, steps)
    enrol_bulk(workflow, ids)
    with write():
        db.session.execute(update(DueStep).where(DueStep.workflow_id == workflow.id)
                           .values(due_at=utcnow() - timedelta(seconds=1)))
    return workflow


def steps_rate(options: argparse.Namespace) -> None:
    from plugins.workflows import runner
    from plugins.workflows.models import StepRun
    with Site(options, sink=False) as site, site.app.app_context():
        workflow = chain_site(options, options.enrolments, CHAIN)
        print(f"{options.backend}: {options.enrolments:,} enrolments, a wait then "
              f"{CHAIN_STEPS} non-email steps each; run_batch() in this process", flush=True)
        batches = []
        while True:
            began = time.perf_counter()
            ran = runner.run_batch()
            if not ran:
                break
            batches.append((time.perf_counter() - began, ran))
        seconds = sum(s for s, _ in batches)
        history = db.session.scalar(select(func.count()).select_from(StepRun).where(
            StepRun.workflow_id == workflow.id)) or 0
        db.session.rollback()
    chain = history - options.enrolments  # the waits' ends are history rows too
    rate, with_waits = chain / seconds, history / seconds
    per_batch = statistics.median(s for s, _ in batches)
    print(f"  {history:,} steps ({chain:,} after the waits) in {seconds:.2f} s, "
          f"{len(batches)} batches (median {per_batch:.2f} s): {rate:,.0f} non-email steps/s "
          f"({with_waits:,.0f}/s with the waits' ends)", flush=True)
    report = Report(f"workflows_steps_{options.backend}",
                    "non-email steps run by run_batch() in one process",
                    {"backend": options.backend, "enrolments": options.enrolments,
                     "chain": list(CHAIN["steps"]), "batch": runner.BATCH})
    report.target("non-email steps per second, one process", rate, f">= {TARGET_STEPS:g}",
                  rate >= TARGET_STEPS)
    report.extra.update(steps=history, chain_steps=chain, seconds=round(seconds, 3),
                        batches=len(batches), batch_median_s=round(per_batch, 3),
                        steps_per_s_with_waits=round(with_waits, 1))
    print_targets(report, report.write())


# --- profile ------------------------------------------------------------------------------------

def _profiled(what: str, call: Any, out: io.StringIO) -> float:
    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    call()
    profiler.disable()
    seconds = time.perf_counter() - began
    out.write(f"\n===== {what}: {seconds:.3f} s =====\n")
    for order in ("cumulative", "tottime"):
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats(order).print_stats(35)
        out.write(stream.getvalue())
    print(f"  {what}: {seconds:.3f} s", flush=True)
    return seconds


def profile(options: argparse.Namespace) -> None:
    from engine import events
    from engine.events.delivery import deliver_next
    from plugins.workflows import runner
    from plugins.workflows.models import DueStep
    out = io.StringIO()
    with Site(options, sink=False) as site, site.app.app_context():
        template_id = make_template()
        for name, steps in (("wait then email", wait_then("email", template_id)),
                            ("wait then tag", wait_then("tag", template_id)),
                            ("wait then the chain", CHAIN)):
            workflow = make_workflow(name, {"kind": "manual"}, steps)
            ids = make_contacts(options.rows)
            enrol_bulk(workflow, ids)
            with write():
                db.session.execute(update(DueStep).where(DueStep.workflow_id == workflow.id)
                                   .values(due_at=utcnow() - timedelta(seconds=1)))
            _profiled(f"run_batch({options.rows}): {name}",
                      lambda: runner.run_batch(options.rows), out)
        make_workflow("Welcome", {"kind": "form_submitted", "form": "demo"}, {
            "start": "e", "steps": {
                "e": {"kind": "send_email", "template_id": template_id, "next": "w"},
                "w": {"kind": "wait", "mode": "duration", "minutes": 60, "next": ""}}})
        while deliver_next(0)[0]:
            pass  # the setup's events
        ids = make_contacts(options.rows)
        with write():
            events.record_many([{"type": "form_submitted", "contact_id": cid,
                                 "occurred_at": utcnow(), "properties": {"form": "demo"}}
                                for cid in ids])

        def deliver_all() -> None:
            while deliver_next(0)[0]:
                pass
        _profiled(f"delivering {options.rows} form_submitted events (enrolment + first email)",
                  deliver_all, out)
        queued = db.session.scalar(select(func.count()).select_from(MailSend)) or 0
        db.session.rollback()
        print(f"  {queued} emails queued by the deliveries", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "workflows_profile.txt"
    path.write_text(out.getvalue())
    print(f"profiles written to {path.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parts = parser.add_subparsers(dest="part", required=True)
    at_once = parts.add_parser("due", help="N waits ending at one moment, run by workers")
    at_once.add_argument("--contacts", type=int, default=100_000)
    at_once.add_argument("--workers", type=int, default=2)
    at_once.add_argument("--next", choices=("email", "tag"), default="email")
    at_once.add_argument("--enrol", choices=("real", "bulk"), default="real")
    stream = parts.add_parser("trigger", help="events at a steady rate -> first email")
    stream.add_argument("--rate", type=float, default=50.0)
    stream.add_argument("--seconds", type=float, default=60.0)
    stream.add_argument("--workers", type=int, default=1)
    chain = parts.add_parser("steps", help="non-email steps per second, in this process")
    chain.add_argument("--enrolments", type=int, default=5_000)
    prof = parts.add_parser("profile", help="cProfile of run_batch and of a trigger delivery")
    prof.add_argument("--rows", type=int, default=500)
    for part in (at_once, stream, chain, prof):
        part.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
        part.add_argument("--database-url", default="")
        part.add_argument("--database-name", default=DATABASE)
        part.add_argument("--redis-url", default="")
        part.add_argument("--timeout", type=float, default=1800.0)
    options = parser.parse_args()
    runs: dict[str, Any] = {"due": due, "trigger": trigger, "steps": steps_rate,
                            "profile": profile}
    with stop_on_sigterm():
        runs[options.part](options)


if __name__ == "__main__":
    main()
