"""The processes of `magnet serve`: started together, restarted when one dies, stopped together.

Each child runs in a session (and so a process group) of its own:
- a terminal's Ctrl-C reaches `serve` alone, which then stops each child's group with one
  SIGTERM, a graceful stop, instead of every process getting SIGINT at once and then SIGTERM
  from `serve` as well (gunicorn took that for a crash and killed its workers after its
  graceful timeout);
- what a child starts (gunicorn's workers, RQ's scheduler process) is in the child's group, so
  nothing outlives the stop: the group gets SIGKILL once its leader is gone or past the timeout.

Each child also asks Linux to send it SIGTERM when `serve` dies, however it dies, SIGKILL
included (`die_with_parent`, as the embedded Redis does); gunicorn's arbiter and the RQ worker
then stop what they started.

A child that exits while the site runs is started again after a back-off (1 s, doubling up to
`BACKOFF_MAX`, back to 1 s once it stayed up `STABLE_AFTER` seconds), and `serve` says so.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.jobs.embedded import EmbeddedRedis, EmbeddedRedisError, die_with_parent

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 30.0  # seconds up after which a child's next crash starts the back-off afresh


@dataclass
class Backoff:
    """Delays between restarts of something that keeps failing; `clock` is injectable."""

    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    up_since: float = 0.0

    def started(self) -> None:
        self.up_since = self.clock()

    def next_delay(self) -> float:
        """The wait before the next start, after a failure now."""
        if self.clock() - self.up_since >= STABLE_AFTER:
            self.failures = 0
        delay = min(BACKOFF_FIRST * 2 ** self.failures, BACKOFF_MAX)
        self.failures += 1
        return delay


@dataclass
class Child:
    name: str
    args: list[str]
    env: dict[str, str]
    backoff: Backoff
    process: subprocess.Popen[bytes] | None = None
    restart_at: float | None = None  # set while it waits for its back-off to end


class Supervisor:
    """Starts, watches and stops the children; `check()` is called from the caller's loop."""

    def __init__(self, say: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.say, self.clock = say, clock
        self.children: list[Child] = []

    def add(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        child = Child(name, args, env, Backoff(self.clock))
        self.children.append(child)
        return child

    def start_all(self) -> None:
        for child in self.children:
            self._start(child)

    def _start(self, child: Child) -> None:
        child.process = subprocess.Popen(child.args, env=child.env, stdin=subprocess.DEVNULL,
                                         start_new_session=True, preexec_fn=die_with_parent)
        child.restart_at = None
        child.backoff.started()

    def check(self) -> None:
        """Notice children that exited (restart later, after their back-off) and restart those
        whose back-off is over."""
        now = self.clock()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._start(child)
                    self.say(f"Restarted the {child.name}.")
                continue
            assert child.process is not None
            code = child.process.poll()
            if code is None:
                continue
            _kill_group(child.process.pid)  # what it started goes with it
            delay = child.backoff.next_delay()
            child.restart_at = now + delay
            self.say(f"The {child.name} stopped ({_exit_reason(code)}); "
                     f"restarting it in {delay:g} s.")

    def stop(self, timeout: float) -> None:
        """SIGTERM to every child's group (the RQ scheduler process then stops alongside its
        worker rather than after it), then SIGKILL to whatever is left of a group once its
        leader is gone or past `timeout` seconds."""
        running = [c.process for c in self.children if c.process and c.restart_at is None]
        for process in running:
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"A process (pid {process.pid}) did not stop within {timeout:g} s; "
                         "killing it.")
            _kill_group(process.pid)
            process.wait()


def _kill_group(pgid: int) -> None:
    _signal_group(pgid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class RedisWatch:
    """Restarts the embedded Redis, on the same socket, when it stops while the site runs: the
    web processes reconnect by themselves, the job workers are restarted if they gave up, and
    the outbox's periodic sweep hands over what waited meanwhile."""

    def __init__(self, server: EmbeddedRedis, say: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.server, self.say, self.clock = server, say, clock
        self.backoff = Backoff(clock)
        self.backoff.started()
        self.restart_at: float | None = None

    def check(self) -> None:
        if self.restart_at is None:
            if self.server.running():
                return
            self._later("The embedded Redis stopped")
        elif self.clock() >= self.restart_at:
            try:
                self.server.start()
            except EmbeddedRedisError as exc:
                self._later(f"The embedded Redis did not start ({exc})")
                return
            self.restart_at = None
            self.backoff.started()
            self.say("Restarted the embedded Redis.")

    def _later(self, what: str) -> None:
        delay = self.backoff.next_delay()
        self.restart_at = self.clock() + delay
        self.say(f"{what}; restarting it in {delay:g} s.")
