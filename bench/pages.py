"""Pages: Magnet's landing page and a blog post, anonymous, against bare Flask in the same run.

Baselines: bare Flask rendering a comparable landing-page template after one SQLite query,
and bare Flask returning a short string (the WSGI ceiling). Targets: the engine's cached
landing page at or above the first (aiming at 0.8x the second), p99 under 20 ms at 16
connections.

Smart content, in the same rounds: the landing page with a smart block placed
(`bench/smart_setup.py`), (1) for anonymous visitors arriving from a LinkedIn campaign
(`?utm_source=linkedin`, no cookie: each response sets the visit cookie) at or above the bare
Flask page, and (2) for known contacts in a segment (200 trusted browsers in turn, each a
profile read from Redis) at or above 0.7x it; p99 under 20 ms for both.

    python bench/pages.py [--duration S] [--connections N] [--rounds R]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `engine` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    Gunicorn,
    Report,
    Request,
    Subject,
    arguments,
    compare,
    settings,
    stop_on_sigterm,
)
from bench.site import ROOT, EngineSite, fetch, first_post_path

CEILING = "bare Flask: short string"
BASELINE = "bare Flask: template + 1 query"
LANDING = "magnet: landing page /"
SMART_UTM = "magnet: smart page, anonymous, UTM"
SMART_KNOWN = "magnet: smart page, known contact in a segment"


def smart_subjects(site: EngineSite, engine: Gunicorn, sizes: dict[str, int]) -> list[Subject]:
    """The two smart content runs (none, with a note, when the plugin is missing)."""
    made = subprocess.run([sys.executable, "bench/smart_setup.py"], cwd=ROOT, text=True,
                          capture_output=True, env={**os.environ, **site.env})
    if made.returncode != 0:
        site.notes.append(f"smart content not set up: {made.stderr.strip()[-300:]}")
        return []
    setup = json.loads(made.stdout.strip().splitlines()[-1])
    utm_path = setup["path"] + "?utm_source=linkedin"
    status, body = fetch(engine.url + utm_path)
    if status != 200 or "Welcome, LinkedIn reader" not in body:
        site.notes.append(f"smart page answers {status} without the LinkedIn variant")
        return []
    sizes[SMART_UTM] = len(body.encode())
    return [Subject(SMART_UTM, engine, Request(utm_path)),
            Subject(SMART_KNOWN, engine, Request(setup["path"],
                                                 cookies=setup["known_cookies"]))]


def main() -> None:
    options = arguments(__doc__.split("\n\n")[0])
    report = Report("pages", "anonymous page views, Magnet against bare Flask",
                    settings(options, plugins_enabled=["tracking", "smart_content"]),
                    baselines=[BASELINE, CEILING])
    with stop_on_sigterm(), ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pages-"))
        site = stack.enter_context(EngineSite(plugins=("tracking", "smart_content")))
        engine = site.serve()
        ceiling = stack.enter_context(Gunicorn("bench.baselines:string_app"))
        page = stack.enter_context(Gunicorn("bench.baselines:page_app()",
                                            {"BENCH_SQLITE": f"{folder}/baseline.db"}))
        subjects = [Subject(CEILING, ceiling, Request("/")), Subject(BASELINE, page, Request("/"))]
        sizes = {BASELINE: len(fetch(page.url + "/")[1].encode())}

        status, body = fetch(engine.url + "/")
        if status == 200:
            subjects.append(Subject(LANDING, engine, Request("/")))
            sizes[LANDING] = len(body.encode())
        else:
            site.notes.append(f"the engine answers {status} on /: measuring /healthz instead")
            subjects.append(Subject("magnet: /healthz", engine, Request("/healthz")))
        post = first_post_path(engine.url)
        if post:
            label = "magnet: blog post"
            report.extra["blog_post"] = post
            subjects.append(Subject(label, engine, Request(post)))
            sizes[label] = len(fetch(engine.url + post)[1].encode())
        else:
            site.notes.append("no blog post in /sitemap.xml yet: blog post not measured")
        subjects += smart_subjects(site, engine, sizes)
        report.extra["seconds_waited_for_the_worker"] = round(site.wait_quiet(), 1)
        compare(report, subjects, options)
        report.extra["notes"] = site.notes
    report.extra["page_bytes"] = sizes

    if any(run.label == LANDING for run in report.runs):
        landing = report.figures(LANDING)
        ratio = report.ratio(LANDING, BASELINE)
        report.target("landing page req/s vs bare Flask page", ratio, ">= 1.0x", ratio >= 1.0)
        ceiling_ratio = report.ratio(LANDING, CEILING)
        report.target("landing page req/s vs WSGI ceiling", ceiling_ratio, "aim 0.8x",
                      ceiling_ratio >= 0.8)
        report.target(f"landing page p99 ms at {options.connections} connections",
                      landing.p99_ms, "< 20 ms", landing.p99_ms < 20)
    for label, target in ((SMART_UTM, 1.0), (SMART_KNOWN, 0.7)):
        if any(run.label == label for run in report.runs):
            ratio = report.ratio(label, BASELINE)
            report.target(f"{label} req/s vs bare Flask page", ratio, f">= {target}x",
                          ratio >= target)
            p99 = report.figures(label).p99_ms
            report.target(f"{label} p99 ms at {options.connections} connections", p99,
                          "< 20 ms", p99 < 20)
    report.finish()


if __name__ == "__main__":
    main()
