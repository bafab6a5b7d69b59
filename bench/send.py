"""Sending a newsletter: `magnet worker`s against raw smtplib, to the same local SMTP sink.

The sink (`bench/smtp_sink.py`, aiosmtpd on loopback, in a process of its own) accepts and
counts. Baseline: one process sending pre-rendered messages (a thousand, of the same size,
cycled) with `smtplib.sendmail` over one reused connection - the least a sender can do.
Magnet: a site with N subscribed contacts, an editor's newsletter template (Markdown, ten
links, personalised), DKIM signing (a key made by `magnet mail dkim-keygen`), open and click
tracking with UTM parameters, unsubscribe headers, one VERP return path per recipient, the send
ledger and an `email_sent` event per recipient - queued by `engine.mail.sending.enqueue` and
sent by `magnet worker` processes, as deployed. The clock runs from the queueing commit to the
last ledger row marked sent; the workers' peak RSS is read from /proc.
Targets: >= 0.8x the baseline's messages per second; worker RSS < 300 MB; 100,000 in < 4 min.

    python bench/send.py [--recipients N] [--workers W] [--database-url URL] [--pipelining]

`--pipelining`: the sink offers PIPELINING, as real receiving servers do; Magnet then sends
MAIL, RCPT and DATA in one write, the smtplib baseline and floor cannot (default: off, the
sink as the targets were first measured against).
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import smtplib
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `engine` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, insert, select

from bench.harness import RESULTS, Service, free_port, machine, stop_on_sigterm, wait_until
from bench.site import EngineSite
from engine import create_app
from engine.contacts.models import Contact, Subscription
from engine.db import db, utcnow, write
from engine.jobs.connection import client_for
from engine.mail import dkim, sending
from engine.mail.compose import Envelope, compose
from engine.mail.models import EmailTemplate, MailSend
from engine.mail.service import new_message_id

NEWSLETTER = """\
# This month at {{ site.name }}

Hello {{ contact.first_name | default("there") }},

Here is what we wrote for small teams like yours{% if company.name %}
at {{ company.name }}{% endif %}.

- [Email marketing vs automation]({{ site.url }}/blog/email-marketing-vs-marketing-automation)
- [Landing page fixes that pay]({{ site.url }}/blog/landing-page-fixes)
- [Lead scoring for small teams]({{ site.url }}/blog/lead-scoring-for-small-teams)
- [A welcome series people read]({{ site.url }}/blog/welcome-series-people-read)
- [Revenue attribution]({{ site.url }}/blog/revenue-attribution-without-a-data-team)
- [SEO basics]({{ site.url }}/blog/seo-basics-for-small-business-blogs)

**Webinar on Thursday:** [save your seat]({{ site.url }}/webinar) or
[read the playbook](https://example.org/playbook?ref=news).

Questions? [Write to us]({{ site.url }}/about) or see [pricing]({{ site.url }}/pricing).

Thanks for reading,
The team
"""


def baseline_client(port: int, count: int, messages_file: str, key_file: str = "") -> None:
    """A baseline, in a process of its own: prints the seconds and CPU seconds it took. With
    `key_file`, each message is DKIM-signed before it goes, as Magnet signs (the same code):
    the least a signing sender must do, which no implementation can avoid."""
    messages: list[tuple[str, str, bytes]] = pickle.loads(Path(messages_file).read_bytes())
    sign = None
    if key_file:
        key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
        sign = dkim.make_signer(key, "bench", "acme.example")  # type: ignore[arg-type]
    connection = smtplib.SMTP("127.0.0.1", port, timeout=30)
    started, cpu = time.perf_counter(), time.process_time()
    for n in range(count):
        sender, to, data = messages[n % len(messages)]
        connection.sendmail(sender, [to], sign(data) + data if sign else data)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    connection.quit()
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu}))


def _contacts(app: Any, count: int) -> None:
    """N subscribed contacts, inserted in bulk (a form would take hours to make them)."""
    now = utcnow()
    table, subs = Contact.__table__, Subscription.__table__
    with app.app_context():
        for start in range(0, count, 5000):
            with write() as session:
                connection = session.connection()
                ids = connection.execute(insert(table).returning(table.c.id), [
                    {"email": f"reader{n}@example.com", "first_name": f"Reader{n}",
                     "last_name": "", "phone": "", "job_title": "", "country": "",
                     "lifecycle_stage": "subscriber", "custom": {}, "consent": "granted",
                     "consent_proof": {}, "first_touch": {}, "last_touch": {},
                     "status": "active", "created_at": now, "updated_at": now}
                    for n in range(start, min(count, start + 5000))]).scalars().all()
                connection.execute(insert(subs), [
                    {"contact_id": cid, "list_slug": "newsletter", "status": "subscribed",
                     "source": "bench", "created_at": now, "confirmed_at": now}
                    for cid in ids])


def _queue(app: Any) -> float:
    """Queue the newsletter to every contact; returns when it was committed (epoch seconds)."""
    with app.app_context():
        with write():
            template = EmailTemplate(
                name="Monthly news", subject="News for {{ contact.first_name }}",
                preheader="Six articles and a webinar", format="markdown", body=NEWSLETTER,
                kind="marketing")
            db.session.add(template)
            db.session.flush()
            mailing = sending.mailing("newsletter:bench", template_id=template.id,
                                      list_slug="newsletter", from_name="Acme News",
                                      utm={"utm_source": "newsletter", "utm_medium": "email",
                                           "utm_campaign": "monthly"})
            ids = list(db.session.scalars(select(Contact.id)))
            sending.enqueue(mailing, ids)
        return time.time()


def _sent(app: Any) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(MailSend).where(
            MailSend.status == "sent"))
        db.session.rollback()
        return int(count or 0)


def _sample_messages(app: Any, count: int = 1000) -> list[tuple[str, str, bytes]]:
    """Messages of the same size as Magnet's (rendered once, here), for the baseline."""
    with app.app_context():
        text = NEWSLETTER.replace("{{ contact.first_name | default(\"there\") }}", "Reader")
        html = "<html><body>" + "".join(f"<p>{line}</p>" for line in text.splitlines()) + \
            "</body></html>"
        return [("bounces@acme.example", f"reader{n}@example.com",
                 compose(Envelope(to=f"reader{n}@example.com", subject=f"News for Reader{n}",
                                  message_id=new_message_id()), html * 3, text))
                for n in range(count)]


def _baseline(port: int, count: int, messages: Path, key_file: Path | None = None
              ) -> dict[str, float]:
    args = [sys.executable, "bench/send.py", "--baseline-client", str(port), str(count),
            str(messages)] + ([str(key_file)] if key_file else [])
    client = Service("baseline", args).start()
    client.wait(timeout=1800)
    return json.loads(client.log.read_text().strip().splitlines()[-1])


def _cpu_seconds(service: Service) -> float:
    """User and system CPU the process has used so far (from /proc)."""
    assert service.process is not None
    fields = Path(f"/proc/{service.process.pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(service: Service) -> float:
    assert service.process is not None
    status = Path(f"/proc/{service.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default="",
                        help="PostgreSQL URL (default: the embedded SQLite file)")
    parser.add_argument("--pipelining", action="store_true",
                        help="the sink offers PIPELINING (smtplib, the baseline, never uses it)")
    parser.add_argument("--baseline-client", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.baseline_client:
        port, count, path, *key = options.baseline_client
        baseline_client(int(port), int(count), path, *key)
        return

    port, counted = free_port(), Path(tempfile.mkstemp(prefix="bench-sink-")[1])
    config = {"MAGNET_MAIL_HOST": "127.0.0.1", "MAGNET_MAIL_PORT": str(port),
              "MAGNET_SITE_URL": "https://acme.example", "MAGNET_SITE_NAME": "Acme",
              "MAGNET_MAIL_FROM": "Acme <news@acme.example>",
              "MAGNET_MAIL_DKIM_SELECTOR": "bench", "MAGNET_MAIL_DKIM_DOMAIN": "acme.example"}
    if options.database_url:
        config["DATABASE_URL"] = options.database_url
    result: dict[str, Any] = {"workload": "send", "date": datetime.now(UTC).isoformat(),
                              "machine": machine(), "recipients": options.recipients,
                              "workers": options.workers, "sink_pipelining": options.pipelining}
    with stop_on_sigterm(), EngineSite(workers=0, content=False, config=config) as site:
        sink = Service("smtp-sink", [sys.executable, "-m", "bench.smtp_sink", str(port),
                                     str(counted), *(["pipelining"] * options.pipelining)]
                       ).start()
        site.services.append(sink)
        wait_until(lambda: counted.read_text().strip() != "", 30, "the SMTP sink")
        if site.has_command("mail", "dkim-keygen"):
            site.magnet("mail", "dkim-keygen", "--selector", "bench")
        else:
            result["note"] = "no DKIM key command: sent unsigned"
        app = create_app({"REDIS_URL": site.redis.url, "MAIL_HOST": "127.0.0.1",
                          "MAIL_PORT": port, "SITE_URL": "https://acme.example",
                          "MAIL_FROM": "Acme <news@acme.example>",
                          **({"SQLALCHEMY_DATABASE_URI": options.database_url}
                             if options.database_url else {})},
                         instance_path=site.instance)
        try:
            print("baseline: raw smtplib, one connection, pre-rendered messages", flush=True)
            messages = Path(tempfile.mkstemp(prefix="bench-messages-")[1])
            messages.write_bytes(pickle.dumps(_sample_messages(app)))
            sink_cpu = _cpu_seconds(sink)
            plain = _baseline(port, options.recipients, messages)
            sink_plain = _cpu_seconds(sink) - sink_cpu
            base_seconds = plain["seconds"]
            base_rate = options.recipients / base_seconds
            print(f"  {base_rate:,.0f} messages/s ({base_seconds:.1f} s); CPU per message: "
                  f"client {plain['cpu_seconds'] / options.recipients * 1000:.2f} ms, sink "
                  f"{sink_plain / options.recipients * 1000:.2f} ms", flush=True)
            key_file = site.instance / "dkim" / "bench.private"
            signed = None
            if key_file.exists():
                print("floor: the same, each message DKIM-signed first", flush=True)
                signed = _baseline(port, options.recipients, messages, key_file)
                print(f"  {options.recipients / signed['seconds']:,.0f} messages/s "
                      f"({signed['seconds']:.1f} s); "
                      f"{signed['seconds'] and base_seconds / signed['seconds']:.2f}x the "
                      "baseline", flush=True)

            print(f"magnet: {options.recipients:,} contacts, {options.workers} workers",
                  flush=True)
            _contacts(app, options.recipients)
            sink_before = _cpu_seconds(sink)
            queued_started = time.time()
            queued_at = _queue(app)
            workers = [Service(f"worker{n}", [sys.executable, "-m", "engine.cli", "worker"],
                               site.env).start() for n in range(options.workers)]
            site.services.extend(workers)
            last, last_at = 0, time.time()
            while True:
                time.sleep(1.0)
                sent = _sent(app)
                if sent >= options.recipients:
                    break
                if sent != last:
                    last, last_at = sent, time.time()
                elif time.time() - last_at > 60:
                    raise SystemExit(f"sending stalled at {sent}: see {workers[0].log}")
            seconds = time.time() - queued_at
            rate = options.recipients / seconds
            rss = max(_peak_rss_mb(worker) for worker in workers)
            worker_cpu = sum(_cpu_seconds(worker) for worker in workers)
            sink_magnet = _cpu_seconds(sink) - sink_before
            for worker in workers:
                worker.stop()
            print(f"  queued in {queued_at - queued_started:.1f} s; sent {rate:,.0f} messages/s "
                  f"({seconds:.1f} s); worker peak RSS {rss:.0f} MB; CPU per message: "
                  f"workers {worker_cpu / options.recipients * 1000:.2f} ms (sending, events "
                  f"delivered, queues), sink {sink_magnet / options.recipients * 1000:.2f} ms",
                  flush=True)
            print("baseline again (the machine's speed drifts; the two runs are averaged)",
                  flush=True)
            again = _baseline(port, options.recipients, messages)
            print(f"  {options.recipients / again['seconds']:,.0f} messages/s "
                  f"({again['seconds']:.1f} s)", flush=True)
            base_seconds = (base_seconds + again["seconds"]) / 2
            base_rate = options.recipients / base_seconds

        finally:
            with app.app_context():
                db.engine.dispose()
            client_for(app).close()
    ratio = rate / base_rate
    result.update({
        "baseline": {"messages_per_s": round(base_rate, 1), "seconds": round(base_seconds, 2),
                     "client_cpu_ms_per_message": round(
                         plain["cpu_seconds"] / options.recipients * 1000, 3),
                     "sink_cpu_ms_per_message": round(sink_plain / options.recipients * 1000, 3)},
        "floor_dkim_signed": signed and {
            "messages_per_s": round(options.recipients / signed["seconds"], 1),
            "ratio": round(base_seconds / signed["seconds"], 3),
            "client_cpu_ms_per_message": round(
                signed["cpu_seconds"] / options.recipients * 1000, 3)},
        "magnet": {"messages_per_s": round(rate, 1), "seconds": round(seconds, 2),
                   "queue_seconds": round(queued_at - queued_started, 2),
                   "worker_peak_rss_mb": round(rss, 1),
                   "worker_cpu_ms_per_message": round(worker_cpu / options.recipients * 1000, 3),
                   "sink_cpu_ms_per_message": round(sink_magnet / options.recipients * 1000, 3)},
        "targets": [
            {"target": "rate vs baseline", "value": round(ratio, 3), "goal": ">= 0.8",
             "met": ratio >= 0.8},
            {"target": "worker RSS MB", "value": round(rss, 1), "goal": "< 300",
             "met": rss < 300},
            {"target": "seconds for the run", "value": round(seconds, 1),
             "goal": "< 240 for 100,000", "met": seconds * 100_000 / options.recipients < 240},
        ]})
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "send.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print()
    for target in result["targets"]:
        print(f"target {target['target']}: {target['value']} (goal {target['goal']}) "
              f"{'MET' if target['met'] else 'NOT MET'}")
    print(f"figures written to {path}")


if __name__ == "__main__":
    main()
