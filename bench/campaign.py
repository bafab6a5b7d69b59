"""A newsletter campaign: "send now" to the last message accepted, and sends due over the day.

Two workloads, each against the same local SMTP sink as `bench/send.py` (aiosmtpd on loopback,
in a process of its own), with `magnet worker` processes as deployed:

- `now` (default): N subscribed contacts; an editor's campaign to the list (the send.py
  newsletter template: Markdown, ten links, personalised; DKIM, tracking, unsubscribe headers)
  is sent now. The clock runs from the "send now" commit to the campaign marked sent: the
  tick's start (the audience frozen into recipient rows by one INSERT ... SELECT), the release
  of due rows into the send ledger, rendering and sending. Baseline: raw smtplib with
  pre-rendered messages over one connection, run before and after and averaged (send.py's);
  floor: the same messages DKIM-signed first, the least any signing sender does.
  Targets: >= 0.8x the baseline's messages per second; worker RSS < 300 MB.
- `spread`: recipients due evenly over `--minutes` (100,000 over 24 hours is 69 a minute: the
  default is that rate for 10 minutes), as local-time and best-time sends are; each one's
  lateness is its `sent_at` minus its `due_at`. Target: p99 within 30 s.

    python bench/campaign.py [now|spread] [--recipients N] [--workers W] [--minutes M]
                             [--database-url URL]
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `engine` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select, update

from bench.harness import RESULTS, Service, free_port, machine, stop_on_sigterm, wait_until
from bench.send import (
    NEWSLETTER,
    _baseline,
    _contacts,
    _peak_rss_mb,
    _sample_messages,
)
from bench.site import EngineSite
from engine import create_app
from engine.db import db, utcnow, write
from engine.jobs.connection import client_for
from engine.mail.models import EmailTemplate, MailSend
from plugins.newsletters import service
from plugins.newsletters.models import Campaign, Recipient


def _campaign(app: Any, timing: str = "now") -> int:
    with app.app_context():
        with write():
            template = EmailTemplate(
                name="Monthly news", subject="News for {{ contact.first_name }}",
                preheader="Six articles and a webinar", format="markdown", body=NEWSLETTER,
                kind="marketing")
            db.session.add(template)
            db.session.flush()
        return service.save({"name": "Monthly news", "template_id": template.id,
                             "from_name": "Acme News", "timing": timing,
                             "audience": {"lists": ["newsletter"]}}).id


def _status(app: Any, campaign_id: int) -> tuple[str, int]:
    with app.app_context():
        status = db.session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
        sent = db.session.scalar(select(func.count()).select_from(MailSend).where(
            MailSend.status == "sent"))
        db.session.rollback()
        return str(status), int(sent or 0)


def _workers(site: EngineSite, count: int) -> list[Service]:
    workers = [Service(f"worker{n}", [sys.executable, "-m", "engine.cli", "worker"],
                       site.env).start() for n in range(count)]
    site.services.extend(workers)
    return workers


def _wait_for(app: Any, campaign_id: int, total: int, workers: list[Service],
              stall: float = 90) -> None:
    last, last_at = -1, time.time()
    while True:
        time.sleep(1.0)
        status, sent = _status(app, campaign_id)
        if status == "sent" and sent >= total:
            return
        if sent != last:
            last, last_at = sent, time.time()
        elif time.time() - last_at > stall:
            raise SystemExit(f"sending stalled at {sent} ({status}): see {workers[0].log}")


def run_now(site: EngineSite, app: Any, port: int, options: Any, result: dict[str, Any]) -> None:
    print("baseline: raw smtplib, one connection, pre-rendered messages", flush=True)
    messages = Path(tempfile.mkstemp(prefix="bench-messages-")[1])
    messages.write_bytes(pickle.dumps(_sample_messages(app)))
    plain = _baseline(port, options.recipients, messages)
    print(f"  {options.recipients / plain['seconds']:,.0f} messages/s "
          f"({plain['seconds']:.1f} s)", flush=True)
    print("floor: the same, each message DKIM-signed first (what every copy must cost)",
          flush=True)
    signed = _baseline(port, options.recipients, messages,
                       site.instance / "dkim" / "bench.private")
    floor = plain["seconds"] / signed["seconds"]
    print(f"  {options.recipients / signed['seconds']:,.0f} messages/s "
          f"({signed['seconds']:.1f} s); {floor:.2f}x the baseline", flush=True)
    print(f"magnet: {options.recipients:,} contacts, {options.workers} workers", flush=True)
    _contacts(app, options.recipients)
    campaign_id = _campaign(app)
    workers = _workers(site, options.workers)
    time.sleep(3)  # the workers are up (their start is not the campaign's time)
    with app.app_context():
        service.schedule(campaign_id)
    started = time.time()
    _wait_for(app, campaign_id, options.recipients, workers)
    seconds = time.time() - started
    rss = max(_peak_rss_mb(worker) for worker in workers)
    for worker in workers:
        worker.stop()
    with app.app_context():
        frozen = db.session.scalar(select(Campaign.recipients).where(
            Campaign.id == campaign_id))
        first_due = db.session.scalar(select(func.min(Recipient.due_at)))
        started_at = db.session.scalar(select(Campaign.started_at))
        db.session.rollback()
    print(f"  sent {options.recipients / seconds:,.0f} messages/s ({seconds:.1f} s, "
          f"{frozen:,} frozen); worker peak RSS {rss:.0f} MB", flush=True)
    print("baseline again (the machine's speed drifts; the two runs are averaged)", flush=True)
    again = _baseline(port, options.recipients, messages)
    base_seconds = (plain["seconds"] + again["seconds"]) / 2
    base_rate, rate = options.recipients / base_seconds, options.recipients / seconds
    ratio = rate / base_rate
    result.update({
        "baseline": {"messages_per_s": round(base_rate, 1), "seconds": round(base_seconds, 2)},
        "floor_dkim_signed": {"messages_per_s": round(options.recipients / signed["seconds"], 1),
                              "ratio": round(floor, 3)},
        "magnet": {"messages_per_s": round(rate, 1), "seconds": round(seconds, 2),
                   "frozen": frozen, "started_at": str(started_at), "due": str(first_due),
                   "worker_peak_rss_mb": round(rss, 1)},
        "targets": [
            {"target": "rate vs baseline", "value": round(ratio, 3), "goal": ">= 0.8",
             "met": ratio >= 0.8},
            {"target": "worker RSS MB", "value": round(rss, 1), "goal": "< 300",
             "met": rss < 300}]})


def run_spread(site: EngineSite, app: Any, options: Any, result: dict[str, Any]) -> None:
    """Start a campaign, then spread its recipients' due times evenly over the next
    `minutes` (what local-time and best-time sending write), and measure each one's
    lateness once all are sent."""
    total = options.recipients
    print(f"magnet: {total:,} recipients due over {options.minutes} minutes "
          f"({total / options.minutes:,.0f} a minute), {options.workers} workers", flush=True)
    _contacts(app, total)
    campaign_id = _campaign(app, timing="local")
    with app.app_context():
        service.schedule(campaign_id, utcnow() + timedelta(days=365))  # frozen by hand below
        with write():
            from plugins.newsletters import audience
            found = db.session.get(Campaign, campaign_id)
            for variant in service.variants(found):
                service.mailing_for(found, variant)
            found.recipients = audience.freeze(campaign_id, found.audience, "waiting", None)
            found.status, found.started_at = "sending", utcnow()
        start = utcnow() + timedelta(seconds=30)
        step = timedelta(minutes=options.minutes) / total
        with write():
            ids = list(db.session.scalars(select(Recipient.id).order_by(Recipient.id)))
            for n, rid in enumerate(ids):
                db.session.execute(update(Recipient).where(Recipient.id == rid).values(
                    due_at=start + step * n))
    workers = _workers(site, options.workers)
    _wait_for(app, campaign_id, total, workers, stall=options.minutes * 60 + 120)
    rss = max(_peak_rss_mb(worker) for worker in workers)
    for worker in workers:
        worker.stop()
    with app.app_context():
        rows = db.session.execute(select(Recipient.due_at, MailSend.sent_at).join(
            MailSend, MailSend.contact_id == Recipient.contact_id).where(
            MailSend.status == "sent")).all()
    late = sorted((sent - due).total_seconds() for due, sent in rows)
    p50, p99 = late[len(late) // 2], late[min(len(late) - 1, int(len(late) * 0.99))]
    print(f"  lateness p50 {p50:.1f} s, p99 {p99:.1f} s, max {late[-1]:.1f} s; worker peak "
          f"RSS {rss:.0f} MB", flush=True)
    result.update({"minutes": options.minutes,
                   "magnet": {"lateness_p50_s": round(p50, 2), "lateness_p99_s": round(p99, 2),
                              "lateness_max_s": round(late[-1], 2),
                              "worker_peak_rss_mb": round(rss, 1)},
                   "targets": [{"target": "p99 seconds after due", "value": round(p99, 2),
                                "goal": "< 30", "met": p99 < 30},
                               {"target": "worker RSS MB", "value": round(rss, 1),
                                "goal": "< 300", "met": rss < 300}]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", nargs="?", default="now", choices=("now", "spread"))
    parser.add_argument("--recipients", type=int, default=0,
                        help="default: 100,000 (now); 69 a minute (spread)")
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default="",
                        help="PostgreSQL URL (default: the embedded SQLite file)")
    options = parser.parse_args()
    if not options.recipients:
        options.recipients = 100_000 if options.workload == "now" else 69 * options.minutes

    port, counted = free_port(), Path(tempfile.mkstemp(prefix="bench-sink-")[1])
    config = {"MAGNET_MAIL_HOST": "127.0.0.1", "MAGNET_MAIL_PORT": str(port),
              "MAGNET_SITE_URL": "https://acme.example", "MAGNET_SITE_NAME": "Acme",
              "MAGNET_MAIL_FROM": "Acme <news@acme.example>",
              "MAGNET_MAIL_DKIM_SELECTOR": "bench", "MAGNET_MAIL_DKIM_DOMAIN": "acme.example"}
    if options.database_url:
        config["DATABASE_URL"] = options.database_url
    result: dict[str, Any] = {"workload": f"campaign-{options.workload}",
                              "date": datetime.now(UTC).isoformat(), "machine": machine(),
                              "recipients": options.recipients, "workers": options.workers}
    with stop_on_sigterm(), EngineSite(workers=0, content=False, config=config) as site:
        sink = Service("smtp-sink", [sys.executable, "-m", "bench.smtp_sink", str(port),
                                     str(counted)]).start()
        site.services.append(sink)
        wait_until(lambda: counted.read_text().strip() != "", 30, "the SMTP sink")
        site.magnet("mail", "dkim-keygen", "--selector", "bench")
        app = create_app({"REDIS_URL": site.redis.url, "MAIL_HOST": "127.0.0.1",
                          "MAIL_PORT": port, "SITE_URL": "https://acme.example",
                          "MAIL_FROM": "Acme <news@acme.example>",
                          **({"SQLALCHEMY_DATABASE_URI": options.database_url}
                             if options.database_url else {})},
                         instance_path=site.instance)
        try:
            if options.workload == "now":
                run_now(site, app, port, options, result)
            else:
                run_spread(site, app, options, result)
        finally:
            with app.app_context():
                db.engine.dispose()
            client_for(app).close()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"campaign-{options.workload}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print()
    for target in result["targets"]:
        print(f"target {target['target']}: {target['value']} (goal {target['goal']}) "
              f"{'MET' if target['met'] else 'NOT MET'}")
    print(f"figures written to {path}")


if __name__ == "__main__":
    main()
