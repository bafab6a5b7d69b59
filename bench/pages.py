"""Pages: Magnet's landing page and a blog post, anonymous, against bare Flask in the same run.

Baselines: bare Flask rendering a comparable landing-page template after one SQLite query,
and bare Flask returning a short string (the WSGI ceiling). Targets: the engine's cached
landing page at or above the first (aiming at 0.8x the second), p99 under 20 ms at 16
connections.

    python bench/pages.py [--duration S] [--connections N] [--rounds R]
"""
from __future__ import annotations

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
from bench.site import EngineSite, fetch, first_post_path

CEILING = "bare Flask: short string"
BASELINE = "bare Flask: template + 1 query"
LANDING = "magnet: landing page /"


def main() -> None:
    options = arguments(__doc__.split("\n\n")[0])
    report = Report("pages", "anonymous page views, Magnet against bare Flask",
                    settings(options, plugins_enabled=["tracking"]),
                    baselines=[BASELINE, CEILING])
    with stop_on_sigterm(), ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pages-"))
        site = stack.enter_context(EngineSite(plugins=("tracking",)))
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
    report.finish()


if __name__ == "__main__":
    main()
