"""Form submissions: Magnet's form pipeline against bare Flask doing one INSERT per request.

Each Magnet submission is validated, stored with its contact, activity and outbox rows in one
transaction, and followed up by a running `magnet worker`. The client behaves like a browser:
it opens the form page, waits longer than the minimum fill time, and sends every submission
with a new email address and a token of its own (a token stores one submission, as a page
fetched once gives one): the tokens are made beforehand by the engine's `form_token`, the
function that makes the one on each page served, since fetching the form page once per
submission before the load would only take time. All load comes from one address, so the
per-IP limit is raised for the run (the limiter still counts every hit in Redis).
Afterwards every accepted submission must be in the database, and the outbox drained.
Targets: at least 0.7x the baseline's submissions per second, and 0.28x the pipeline's
floor (below); none lost.

A third app in the same run, the pipeline's floor (`bench.baselines.pipeline_floor_app`), does
by hand on sqlite3 only what the form pipeline must do and no follow-up: its ratio is an upper
bound for what any implementation of the pipeline could reach on this machine.

    python bench/submissions.py [--duration S] [--connections N] [--rounds R]
"""
from __future__ import annotations

import re
import sqlite3
import sys
import tempfile
import time
import urllib.parse
from contextlib import ExitStack
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `engine` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.baselines import count_submissions, floor_token
from bench.harness import (
    ROOT,
    TOKEN,
    UNIQUE,
    Gunicorn,
    Report,
    Request,
    Subject,
    answered,
    arguments,
    compare,
    settings,
    stop_on_sigterm,
    wait_until,
)
from bench.site import EngineSite, fetch, fill_form
from engine.forms.security import HONEYPOT, TOKEN_FIELD

BASELINE = "bare Flask: one INSERT"
MAGNET = "magnet: form submission"
FLOOR = "bare Flask: the pipeline's floor"
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded",
                "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36",
                "Accept": "text/html"}
MARK = "BENCHUNIQUE"  # survives URL-encoding, then becomes the harness's unique marker
TOKEN_MARK = "BENCHTOKEN"  # the same, for the harness's token marker
FLOOR_TARGET = 0.28  # the target against the pipeline's floor
TOKENS_PER_SECOND = 3000  # tokens made per second of load: more than the site accepts here


def form_slug(base_url: str) -> str:
    """The form on the landing page (as a visitor finds it), else the first demo form."""
    status, body = fetch(base_url + "/")
    found = re.search(r'action="[^"]*/forms/([\w-]+)"', body) if status == 200 else None
    if found:
        return found.group(1)
    files = sorted((ROOT / "content" / "forms").glob("*.*"))
    if not files:
        raise SystemExit("no form to submit: neither the landing page nor content/forms/ has one")
    return files[0].stem


def submission_request(site: EngineSite, base_url: str, slug: str, tokens: int) -> Request:
    """The form as a browser fills it, its token replaced by one of `tokens` fresh ones."""
    status, html = fetch(f"{base_url}/forms/{slug}")
    if status != 200:
        raise SystemExit(f"/forms/{slug} answered {status}")
    answers = fill_form(html, f"/forms/{slug}", HONEYPOT, MARK)
    shown = answers[TOKEN_FIELD].split("~")[1]  # the fields the page showed, as it signed them
    answers[TOKEN_FIELD] = TOKEN_MARK
    body = urllib.parse.urlencode(answers).replace(MARK, UNIQUE).replace(TOKEN_MARK, TOKEN)
    return Request(f"/forms/{slug}", "POST", {**FORM_HEADERS, "Origin": base_url}, body,
                   tokens=fresh_tokens(site, slug, shown.split(",") if shown else [], tokens))


def fresh_tokens(site: EngineSite, slug: str, shown: list[str], count: int) -> list[str]:
    """`count` form tokens as the site hands them out with its pages (same key, same fields),
    URL-encoded for the body."""
    from engine import create_app
    from engine.db import db
    from engine.forms.security import form_token
    app = create_app({"REDIS_URL": site.redis.url}, instance_path=site.instance)
    try:
        with app.app_context():
            return [urllib.parse.quote(form_token(slug, shown), safe="") for _ in range(count)]
    finally:
        with app.app_context():
            db.engine.dispose()


def stored(database: Path, sql: str) -> int:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        return int(connection.execute(sql).fetchone()[0])
    finally:
        connection.close()


def main() -> None:
    options = arguments(__doc__.split("\n\n")[0])
    report = Report("submissions", "form submissions per second, every one accounted for",
                    settings(options, worker_processes=1), baselines=[BASELINE, FLOOR])
    limits = {"MAGNET_FORM_RATE_LIMIT_IP": "1000000000", "MAGNET_FORM_RATE_LIMIT_EMAIL": "1000"}
    with stop_on_sigterm(), ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-forms-"))
        baseline_db = f"{folder}/baseline.db"
        site = stack.enter_context(EngineSite(plugins=("tracking",), config=limits))
        engine = site.serve()
        bare = stack.enter_context(Gunicorn("bench.baselines:insert_app()",
                                            {"BENCH_SQLITE": baseline_db}))
        floor = stack.enter_context(Gunicorn("bench.baselines:pipeline_floor_app()",
                                             {"BENCH_SQLITE": f"{folder}/floor.db",
                                              "BENCH_REDIS_URL": site.redis.url}))
        slug = form_slug(engine.url)
        seconds = options.warmup + options.rounds * options.duration
        request = submission_request(site, engine.url, slug, int(seconds * TOKENS_PER_SECOND))
        time.sleep(2.5)  # a person takes longer than the form's minimum fill time
        bare_request = Request(request.path, "POST", FORM_HEADERS, request.body)
        floor_body = re.sub(r"_token=[^&]*", "_token=" + floor_token(), request.body)
        floor_request = Request(request.path, "POST", FORM_HEADERS, floor_body)
        runs = compare(report, [Subject(BASELINE, bare, bare_request),
                                Subject(MAGNET, engine, request),
                                Subject(FLOOR, floor, floor_request)], options)

        database = site.instance / "magnet.db"
        load_ended = time.monotonic()
        accepted = answered(runs[MAGNET])
        count = stored(database,
                       f"SELECT count(*) FROM form_submissions WHERE form_slug = '{slug}'")
        contacts = stored(database, "SELECT count(*) FROM contacts WHERE email LIKE 'bench-%'")
        outbox_open = "SELECT count(*) FROM outbox WHERE status IN ('pending', 'running')"
        try:
            wait_until(lambda: stored(database, outbox_open) == 0, 120, "the outbox to drain")
        except TimeoutError:
            pass
        drained_after = time.monotonic() - load_ended
        report.extra["accounting"] = {
            "form": slug, "magnet_accepted": accepted, "magnet_submissions_stored": count,
            "magnet_contacts_stored": contacts,
            "outbox_left_open": stored(database, outbox_open),
            "outbox_failed": stored(database,
                                    "SELECT count(*) FROM outbox WHERE status = 'failed'"),
            "outbox_drained_seconds_after_load": round(drained_after, 1),
            "baseline_accepted": answered(runs[BASELINE]),
            "baseline_stored": count_submissions(baseline_db),
            "floor_accepted": answered(runs[FLOOR]),
            "floor_stored": count_submissions(f"{folder}/floor.db", "floor_submissions"),
            "note": "stored can exceed accepted by the requests still in flight when the load "
                    "generator stopped (at most connections x runs); lost = accepted - stored",
        }
    accounting = report.extra["accounting"]
    lost = max(0, accounting["magnet_accepted"] - accounting["magnet_submissions_stored"])
    ratio = report.ratio(MAGNET, BASELINE)
    report.target("submissions/s vs bare Flask + INSERT", ratio, ">= 0.7x", ratio >= 0.7)
    report.extra["floor_ratio"] = round(report.ratio(FLOOR, BASELINE), 3)
    to_floor = report.ratio(MAGNET, FLOOR)
    report.target("submissions/s vs the pipeline's floor", to_floor, f">= {FLOOR_TARGET}x",
                  to_floor >= FLOOR_TARGET)
    print(f"the pipeline's floor: {report.extra['floor_ratio']}x the baseline "
          "(the most any implementation of the pipeline could reach here)")
    report.target("submissions lost", lost, "0", lost == 0)
    report.target("outbox rows left unfinished", accounting["outbox_left_open"], "0",
                  accounting["outbox_left_open"] == 0)
    report.finish()


if __name__ == "__main__":
    main()
