"""A Magnet site set up for a benchmark, as a deployment runs it.

A fresh instance folder (`MAGNET_INSTANCE_PATH`) is migrated with `magnet db upgrade`, gets
the demo content (`magnet content sync`) and the plugins asked for, and runs its embedded Redis
and `magnet worker` processes; `serve()` then starts gunicorn on `wsgi:app` with the same
settings as every baseline. Everything is stopped and the folder removed on exit.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from bench.harness import ROOT, Gunicorn, Service, answered, pythonpath
from engine.jobs.embedded import EmbeddedRedis


class EngineSite:
    """`with EngineSite(plugins=("tracking",)) as site:` a ready site; `site.serve()` its web."""

    def __init__(self, plugins: tuple[str, ...] = (), workers: int = 1, content: bool = True,
                 config: dict[str, str] | None = None) -> None:
        self.plugins, self.workers, self.content = plugins, workers, content
        self.instance = Path(tempfile.mkdtemp(prefix="magnet-bench-"))
        self.env = {"MAGNET_INSTANCE_PATH": str(self.instance), "PYTHONPATH": pythonpath(),
                    **(config or {})}
        self.redis = EmbeddedRedis(self.instance)
        self.services: list[Service] = []
        self.notes: list[str] = []

    def magnet(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a `magnet` command against this site's instance folder."""
        result = subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=ROOT,
                                env={**os.environ, **self.env}, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise RuntimeError(f"magnet {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result

    def has_command(self, *words: str) -> bool:
        result = self.magnet(*words, "--help", check=False)
        return result.returncode == 0

    def __enter__(self) -> EngineSite:
        try:
            self.redis.start()
            self.env["REDIS_URL"] = self.redis.url
            self.magnet("db", "upgrade")
            if self.content:
                if self.has_command("content", "sync"):
                    self.magnet("content", "sync")
                else:
                    self.notes.append("no `magnet content sync` command yet: no demo content")
            installed = {line.split()[0] for line in
                         self.magnet("plugins", "list").stdout.splitlines() if line.strip()}
            for slug in self.plugins:
                if slug in installed:
                    self.magnet("plugins", "enable", slug)
                else:
                    self.notes.append(f"plugin {slug!r} is not installed: measured without it")
            for number in range(self.workers):
                worker = Service(f"worker{number}", [sys.executable, "-m", "engine.cli", "worker"],
                                 self.env)
                self.services.append(worker.start())
        except BaseException:
            self.__exit__()
            raise
        for note in self.notes:
            print(f"note: {note}", flush=True)
        return self

    def restart_workers(self) -> None:
        """Stop every `magnet worker` gracefully (SIGTERM, as a deploy does) and start new ones."""
        workers = [service for service in self.services if service.name.startswith("worker")]
        for worker in workers:
            worker.stop()
            worker.start()

    def wait_quiet(self, limit: float = 120.0, busy: float = 0.05) -> float:
        """Wait until the site's `magnet worker`s use less than `busy` of a CPU over a second
        (what a set-up queued, such as segment builds and profile refreshes, is done), at most
        `limit` seconds; returns the seconds waited. Load measured meanwhile would measure the
        set-up's spill-over, not the pages."""
        groups = {s.process.pid for s in self.services
                  if s.name.startswith("worker") and s.process is not None}
        began = time.monotonic()
        before = group_cpu(groups)
        while time.monotonic() - began < limit:
            time.sleep(1.0)
            now = group_cpu(groups)
            if now - before < busy:
                break
            before = now
        return time.monotonic() - began

    def serve(self, ready_path: str = "/healthz") -> Gunicorn:
        """gunicorn on `wsgi:app`, started; stopped with the site."""
        server = Gunicorn("wsgi:app", self.env, ready_path=ready_path, name="magnet").start()
        self.services.append(server)
        return server

    def __exit__(self, *_exc: Any) -> None:
        for service in reversed(self.services):
            service.stop()
        self.services.clear()
        self.redis.stop()
        shutil.rmtree(self.instance, ignore_errors=True)


def group_cpu(groups: set[int]) -> float:
    """CPU seconds used so far by every process in these process groups (from /proc)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in groups:  # the process group id
            total += int(fields[11]) + int(fields[12])
    return total / tick


def fetch(url: str) -> tuple[int, str]:
    """GET a page as a browser would; (status, body), errors included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def first_post_path(base_url: str) -> str | None:
    """A published blog post's path, found the way a crawler would: in the sitemap."""
    status, body = fetch(base_url + "/sitemap.xml")
    if status != 200:
        return None
    for url in re.findall(r"<loc>\s*([^<\s]+)\s*</loc>", body):
        path = re.sub(r"^https?://[^/]+", "", url)
        if re.fullmatch(r"/blog/(?!tag/|category/|page/)[^/]+/?", path):
            return path
    return None


class _FormFields(HTMLParser):
    """The named controls of the first form posting to `action`, as a browser sees them."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action, self.inside, self.done = action, False, False
        self.controls: list[dict[str, str]] = []
        self.select: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form" and not self.done and attributes.get("action", "").endswith(self.action):
            self.inside = True
        elif self.inside and tag in ("input", "textarea") and attributes.get("name"):
            self.controls.append({"tag": tag, "type": attributes.get("type", "text").lower(),
                                  **attributes})
        elif self.inside and tag == "select" and attributes.get("name"):
            self.select = {"tag": "select", "type": "select", **attributes}
            self.controls.append(self.select)
        elif self.inside and tag == "option" and self.select is not None \
                and attributes.get("value") and "value" not in self.select:
            self.select["value"] = attributes["value"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self.select = None
        elif tag == "form" and self.inside:
            self.inside, self.done = False, True


def fill_form(html: str, action: str, honeypot: str, unique: str) -> dict[str, str]:
    """What a person would send: hidden values kept, the honeypot left empty, every other
    field answered plausibly; `unique` goes into the email address."""
    parser = _FormFields(action)
    parser.feed(html)
    answers: dict[str, str] = {}
    for control in parser.controls:
        name, kind = control["name"], control["type"]
        if name == honeypot or kind in ("submit", "button", "file") or name in answers:
            continue
        if kind == "hidden":
            answers[name] = control.get("value", "")
        elif kind in ("checkbox", "radio"):
            answers[name] = control.get("value") or "y"
        elif kind == "email" or "email" in name:
            answers[name] = f"bench-{unique}@example.com"
        elif kind == "select":
            answers[name] = control.get("value", "")
        elif kind == "number":
            answers[name] = control.get("min") or "3"
        elif kind == "tel":
            answers[name] = "+44 20 7946 0000"
        else:
            answers[name] = "Bench"
    return answers


class Cpu:
    """CPU seconds each subject's processes (its web server, and what stores its events) used
    from now until `per_event`, per request it answered: where the two CPUs went, which req/s
    alone does not say. Redis (shared) and the load generator are left out."""

    def __init__(self, processes: dict[str, tuple[tuple[str, ...], list[Service]]]) -> None:
        """`processes`: name -> (the subjects whose requests they serve, their services)."""
        self.subjects = {name: subjects for name, (subjects, _) in processes.items()}
        self.groups = {name: {s.process.pid for s in services if s.process is not None}
                       for name, (_, services) in processes.items()}
        self.began = {name: group_cpu(groups) for name, groups in self.groups.items()}

    def per_event(self, runs: dict[str, list[Any]]) -> dict[str, float]:
        return {name: round((group_cpu(groups) - self.began[name]) * 1000 / max(
                    1, sum(answered(runs[subject]) for subject in self.subjects[name])), 4)
                for name, groups in self.groups.items()}
