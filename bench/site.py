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
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.harness import ROOT, Gunicorn, Service, _pythonpath
from engine.jobs.embedded import EmbeddedRedis


class EngineSite:
    def __init__(self, plugins: tuple[str, ...] = (), workers: int = 1, content: bool = True,
                 config: dict[str, str] | None = None) -> None:
        self.plugins, self.workers, self.content = plugins, workers, content
        self.instance = Path(tempfile.mkdtemp(prefix="magnet-bench-"))
        self.env = {"MAGNET_INSTANCE_PATH": str(self.instance), "PYTHONPATH": _pythonpath(),
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
            self.redis.start()
            self.env["REDIS_URL"] = self.redis.url
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
