"""The benchmark harness: serve a WSGI app with gunicorn, load it from a second process, report.

Every app, Magnet's or a baseline's, is served the same way (gunicorn as deployed, with 2 gevent
workers, on a free loopback port), so the only difference between two figures is the app. Load comes
from `wrk` when it is installed (a generated Lua script sends the request and prints the figures as
JSON from `done()`), else from `bench/pyclient.py`, always in a process of its own.

Every process the harness starts gets a process group of its own and is stopped, group and
all, when its `with` block ends, whatever happened inside; a benchmark leaves nothing running.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
UNIQUE = "{n}"  # in a request body: replaced by a value unique to each request of a run
TOKEN = "{t}"  # in a request body: replaced by the next of the request's `tokens`

# The web server as README's "Deploying" runs it (gevent workers, no control socket), two workers.
# MAGNET_BENCH_WORKER_CLASS=sync measures as the harness did before 2026-12-01, for comparison.
WORKER_CLASS = os.environ.get("MAGNET_BENCH_WORKER_CLASS", "gevent")
GUNICORN_SETTINGS = ["--workers", "2", "--worker-class", WORKER_CLASS, "--no-control-socket",
                     "--backlog", "2048",
                     "--timeout", "30", "--graceful-timeout", "5", "--log-level", "warning"]


@dataclass
class Request:
    """What the load generator sends, over and over. `UNIQUE` in the body is made unique.

    `cookies`, when given, are sent in turn, one per request (as a `Cookie` header; "" sends
    none): many visitors rather than one. `tokens` replace `TOKEN` in the body, each once (a
    single-use form token per submission); `compare()` moves past those a run used."""

    path: str = "/"
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    cookies: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)

    def spent(self, figures: Figures) -> None:
        """Drop the tokens a run may have used: one per request, and one per connection for a
        request still in flight when the run stopped."""
        if self.tokens:
            self.tokens = self.tokens[figures.requests + 2 * figures.connections:]


@dataclass
class Figures:
    """One measured load run."""

    label: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    client: str
    connections: int
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


# --- processes ------------------------------------------------------------------------------

class Service:
    """A child process in its own process group, logging to a file, stopped with its group."""

    def __init__(self, name: str, args: list[str], env: dict[str, str] | None = None,
                 cwd: Path = ROOT) -> None:
        self.name, self.args, self.cwd = name, args, cwd
        self.env = {**os.environ, "PYTHONPATH": pythonpath(), **(env or {})}
        self.log = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(self.args, cwd=self.cwd, env=self.env,
                                            stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait(self, timeout: float) -> int:
        """Wait for a process that ends by itself (a burst worker); its exit code."""
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the whole group (a graceful stop), SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None:
            return
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(process.pid, signal.SIGKILL)  # leftovers of the group, if any
        if process.poll() is None:
            process.wait()
        self.log.unlink(missing_ok=True)

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *_exc: Any) -> None:
        self.stop()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def pythonpath() -> str:
    existing = os.environ.get("PYTHONPATH", "")
    return os.pathsep.join(p for p in (str(ROOT), existing) if p)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gunicorn(Service):
    """An app (`module:callable`, or `module:factory()`) served as deployed, on loopback."""

    def __init__(self, app_spec: str, env: dict[str, str] | None = None,
                 ready_path: str = "/", name: str = "gunicorn") -> None:
        self.port = free_port()
        self.ready_path = ready_path
        super().__init__(name, [sys.executable, "-m", "gunicorn", "--bind",
                                f"127.0.0.1:{self.port}", *GUNICORN_SETTINGS, app_spec], env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Gunicorn:
        super().start()
        try:
            wait_until(lambda: self._answers(), timeout, f"{self.args[-1]} to answer",
                       lambda: self.alive())
        except BaseException:
            tail = self.log_tail()
            self.stop()
            raise RuntimeError(f"{self.args[-1]} did not start:\n{tail}") from None
        return self

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + self.ready_path, timeout=2) as response:
                return response.status < 500
        except urllib.error.HTTPError as exc:
            return exc.code < 500
        except OSError:
            return False

    def __enter__(self) -> Gunicorn:
        return self.start()


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               still_possible: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if not still_possible():
            break
        time.sleep(0.1)
    raise TimeoutError(f"gave up waiting for {what}")


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into SystemExit, so `finally` blocks stop every child on `kill`."""
    def leave(*_: Any) -> None:
        raise SystemExit(143)
    previous = signal.signal(signal.SIGTERM, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- load -----------------------------------------------------------------------------------

def client_kind(preferred: str = "auto") -> str:
    if preferred == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if preferred == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed; use --client python")
    return preferred


def load(base_url: str, request: Request, duration: float, connections: int,
         client: str = "auto", label: str = "") -> Figures:
    """Send `request` from `connections` connections for `duration` seconds."""
    kind = client_kind(client)
    raw = _run_client(kind, base_url, request, duration, connections)
    seconds = raw["duration_us"] / 1e6 or duration
    errors = {k: int(raw.get(k, 0)) for k in ("connect", "read", "write", "status", "timeout")}
    return Figures(label=label or request.path, requests=int(raw["requests"]), seconds=seconds,
                   rps=raw["requests"] / seconds, p50_ms=raw["p50_us"] / 1000,
                   p90_ms=raw["p90_us"] / 1000, p99_ms=raw["p99_us"] / 1000,
                   max_ms=raw["max_us"] / 1000, errors=errors, client=kind,
                   connections=connections)


def _run_client(kind: str, base_url: str, request: Request, duration: float,
                connections: int) -> dict[str, Any]:
    nonce = secrets.token_hex(4)
    if kind == "wrk":
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(wrk_script(request, nonce))
        try:
            # One thread: wrk's event loop keeps up with any Python server, and on a small machine
            # a second thread would only take CPU from the server under test.
            seconds = max(1, round(duration))  # wrk takes whole seconds
            args = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s",
                    "--timeout", "5s", "-s", script.name, base_url + request.path]
            output = _run(args, duration)
        finally:
            os.unlink(script.name)
    else:
        # Cookies and tokens go through a file: thousands of them pass the limit of one
        # command-line argument (128 KiB on Linux).
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as lists:
            json.dump({"cookies": request.cookies, "tokens": request.tokens}, lists)
        try:
            args = [sys.executable, "-m", "bench.pyclient", "--url", base_url + request.path,
                    "--method", request.method, "--body", request.body,
                    "--headers", json.dumps(request.headers), "--duration", f"{duration:g}",
                    "--connections", str(connections), "--nonce", nonce,
                    "--lists", lists.name]
            output = _run(args, duration)
        finally:
            os.unlink(lists.name)
    for line in reversed(output.splitlines()):
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    raise RuntimeError(f"the load generator printed no figures:\n{output[-2000:]}")


def _run(args: list[str], duration: float) -> str:
    """Run the load generator in its own process group, killed with it if we are interrupted."""
    process = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "PYTHONPATH": pythonpath()},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=duration + 60)
    finally:
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
    return output.decode(errors="replace")


def _lua_bytes(data: bytes) -> str:
    """A Lua string literal for any bytes (decimal escapes for all but letters and digits)."""
    escaped = (chr(b) if b < 128 and chr(b).isalnum() else f"\\{b:03d}" for b in data)
    return '"' + "".join(escaped) + '"'


def wrk_script(request: Request, nonce: str) -> str:
    """The Lua script for one wrk run: the request, and `done()` printing figures as JSON."""
    headers = ", ".join(f"[{_lua_bytes(k.encode())}] = {_lua_bytes(v.encode())}"
                        for k, v in request.headers.items())
    if UNIQUE in request.body or request.cookies or request.tokens:
        # Each thread numbers its requests; the prefix makes the values unique across threads
        # and across runs (a warm-up, then the measured run).
        cookies = ", ".join(_lua_bytes(c.encode()) for c in request.cookies)
        tokens = ", ".join(_lua_bytes(t.encode()) for t in request.tokens)
        sending = f"""
local template = {_lua_bytes(request.body.encode())}
local headers = {{{headers}}}
local cookies = {{{cookies}}}
local tokens = {{{tokens}}}
local counter = 0
local prefix = ""
function init(args)
  prefix = {_lua_bytes(nonce.encode())} .. "t" .. tostring(id)
end
function request()
  counter = counter + 1
  if #cookies > 0 then
    local cookie = cookies[(counter % #cookies) + 1]
    if cookie == "" then headers["Cookie"] = nil else headers["Cookie"] = cookie end
  end
  local body = string.gsub(template, "{{n}}", prefix .. "n" .. counter)
  if #tokens > 0 then
    body = string.gsub(body, "{{t}}", function() return tokens[((counter - 1) % #tokens) + 1] end)
  end
  return wrk.format({_lua_bytes(request.method.encode())}, nil, headers, body)
end
"""
    else:
        sending = f"""
wrk.method = {_lua_bytes(request.method.encode())}
wrk.headers = {{{headers}}}
wrk.body = {_lua_bytes(request.body.encode()) if request.body else "nil"}
"""
    return f"""-- generated by bench/harness.py
local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
end
{sending}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


# --- reporting ------------------------------------------------------------------------------

@dataclass
class Report:
    """The figures of one workload run, and their ratios to the run's baselines."""

    workload: str
    description: str
    settings: dict[str, Any]
    runs: list[Figures] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    baselines: list[str] = field(default_factory=list)  # labels ratios are taken against
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, figures: Figures) -> Figures:
        self.runs.append(figures)
        print(f"  {figures.label}: {figures.rps:,.0f} req/s, p50 {figures.p50_ms:.1f} ms, "
              f"p99 {figures.p99_ms:.1f} ms, errors {figures.error_count}", flush=True)
        return figures

    def figures(self, label: str) -> Figures:
        return next(run for run in self.runs if run.label == label)

    def ratio(self, label: str, baseline: str) -> float:
        """req/s of `label` over `baseline`: the median of the per-round ratios when both ran
        in the same rounds (a noisy moment then cancels out), else the overall ratio."""
        run, base = self.figures(label), self.figures(baseline)
        rounds, base_rounds = run.notes.get("rounds_rps"), base.notes.get("rounds_rps")
        if rounds and base_rounds and len(rounds) == len(base_rounds) and all(base_rounds):
            return statistics.median(a / b for a, b in zip(rounds, base_rounds))
        return run.rps / base.rps if base.rps else 0.0

    def target(self, what: str, value: float, goal: str, met: bool) -> None:
        self.targets.append({"target": what, "value": round(value, 3), "goal": goal, "met": met})

    def as_dict(self) -> dict[str, Any]:
        ratios = {baseline: {run.label: round(self.ratio(run.label, baseline), 3)
                             for run in self.runs} for baseline in self.baselines}
        return {"workload": self.workload, "description": self.description,
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "machine": machine(), "settings": self.settings,
                "runs": [{**asdict(run), "rps": round(run.rps, 1)} for run in self.runs],
                "ratios": ratios, "targets": self.targets, **self.extra}

    def write(self) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.workload}.json"
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n")
        return path

    def table(self) -> str:
        """A readable table, with a ratio column for each baseline."""
        head = f"{'run':<40} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
        head += "".join(f" {'ratio ' + str(i):>8}" for i, _ in enumerate(self.baselines, 1))
        lines = [f"{self.workload}: {self.description}", head, "-" * len(head)]
        for run in self.runs:
            line = (f"{run.label:<40} {run.rps:>9,.0f} {run.p50_ms:>8.2f} {run.p99_ms:>8.2f} "
                    f"{run.error_count:>7}")
            line += "".join(f" {self.ratio(run.label, base):>7.2f}x" for base in self.baselines)
            lines.append(line)
        for i, baseline in enumerate(self.baselines, 1):
            lines.append(f"ratio {i}: req/s relative to '{baseline}' in the same run "
                         "(median of the per-round ratios)")
        for run in self.runs:
            if run.error_count:
                lines.append(f"warning: {run.error_count} requests to '{run.label}' failed "
                             f"({', '.join(f'{k} {v}' for k, v in run.errors.items() if v)})")
        for target in self.targets:
            lines.append(f"target {target['target']}: {target['value']} (goal {target['goal']}) "
                         f"{'MET' if target['met'] else 'NOT MET'}")
        return "\n".join(lines)

    def finish(self) -> Path:
        path = self.write()
        print()
        print(self.table())
        print(f"figures written to {_shown(path)}")
        return path


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}", "host": platform.node()}


def settings(options: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """What a run was measured with, kept beside its figures."""
    return {"duration_per_round": options.duration, "rounds": options.rounds,
            "connections": options.connections, "warmup": options.warmup,
            "client": client_kind(options.client),
            "server": "gunicorn " + " ".join(GUNICORN_SETTINGS), **extra}


def arguments(description: str, duration: float = 5.0, connections: int = 16, rounds: int = 3,
              extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The options every workload script takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--duration", type=float, default=duration,
                        help=f"seconds of measured load per app and round (default {duration:g})")
    parser.add_argument("--rounds", type=int, default=rounds,
                        help=f"interleaved rounds over the apps compared (default {rounds})")
    parser.add_argument("--connections", type=int, default=connections,
                        help=f"concurrent connections (default {connections})")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="seconds of unmeasured load before each run (default 2)")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator (default: wrk when installed)")
    if extra:
        extra(parser)
    return parser.parse_args()


@dataclass
class Subject:
    """One app under load in a comparison: a label, its running server, what to send, and
    what to wait for before each of its loads (`settle`: e.g. the site's worker done with what
    the subject before left it, so each load starts from a machine as quiet as the baselines'
    do; its CPU still counts, in `bench.site.Cpu`)."""

    label: str
    server: Gunicorn
    request: Request
    settle: Callable[[], Any] | None = None


def compare(report: Report, subjects: list[Subject],
            options: argparse.Namespace) -> dict[str, list[Figures]]:
    """Load each subject in turn, `options.rounds` times, interleaved.

    Interleaving matters on a shared machine: a slow moment then hits every subject of the
    round, not one of them. Each label's figures are merged over its rounds: req/s from the
    total, latency percentiles as the median of the rounds'. Returns every load run of each
    label, warm-up included (to account for what the apps stored).
    """
    every: dict[str, list[Figures]] = {subject.label: [] for subject in subjects}
    for subject in subjects:
        if options.warmup > 0:
            if subject.settle is not None:
                subject.settle()
            figures = load(subject.server.url, subject.request, options.warmup,
                           options.connections, options.client, subject.label)
            subject.request.spent(figures)
            every[subject.label].append(figures)
    rounds: dict[str, list[Figures]] = {subject.label: [] for subject in subjects}
    for number in range(options.rounds):
        print(f"round {number + 1}/{options.rounds}", flush=True)
        for subject in subjects:
            if subject.settle is not None:
                subject.settle()
            figures = load(subject.server.url, subject.request, options.duration,
                           options.connections, options.client, subject.label)
            print(f"    {subject.label}: {figures.rps:,.0f} req/s, p99 {figures.p99_ms:.1f} ms",
                  flush=True)
            subject.request.spent(figures)
            rounds[subject.label].append(figures)
            every[subject.label].append(figures)
    for subject in subjects:
        report.add(merge(rounds[subject.label]))
    return every


def print_targets(report: Report, path: Path) -> None:
    """Each target with its figure and whether it is met, then where the figures went."""
    for target in report.targets:
        print(f"target {target['target']}: {target['value']} (goal {target['goal']}) "
              f"{'MET' if target['met'] else 'NOT MET'}")
    print(f"figures written to {path.relative_to(ROOT)}")


def answered(runs: list[Figures]) -> int:
    """Requests answered with a success status (below 400) over these runs."""
    return sum(run.requests - run.errors["status"] for run in runs)


def merge(runs: list[Figures]) -> Figures:
    first = runs[0]
    seconds = sum(run.seconds for run in runs)
    requests = sum(run.requests for run in runs)
    errors = {kind: sum(run.errors[kind] for run in runs) for kind in first.errors}
    return Figures(label=first.label, requests=requests, seconds=seconds,
                   rps=requests / seconds if seconds else 0.0,
                   p50_ms=statistics.median(run.p50_ms for run in runs),
                   p90_ms=statistics.median(run.p90_ms for run in runs),
                   p99_ms=statistics.median(run.p99_ms for run in runs),
                   max_ms=max(run.max_ms for run in runs), errors=errors, client=first.client,
                   connections=first.connections,
                   notes={**first.notes, "rounds_rps": [round(run.rps, 1) for run in runs]})
