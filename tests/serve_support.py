"""Starting `magnet serve` (and the documented web server) as real processes, for the tests."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(instance: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MAGNET_", "REDIS_URL", "DATABASE_URL"))}
    return {**env, "MAGNET_INSTANCE_PATH": str(instance), "PYTHONPATH": str(ROOT), **extra}


def start_serve(instance: Path, port: int, *args: str, **env: str) -> subprocess.Popen[str]:
    """`magnet serve` in a session of its own, as in a terminal (Ctrl-C reaches the group)."""
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--port", str(port),
                             *args], env=clean_env(instance, **env), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def wait_for(url: str, predicate, process=None, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}:\n"
                                 f"{process.communicate()[0]}")
        try:
            last = requests.get(url, timeout=2)
            if predicate(last):
                return last
        except requests.RequestException:  # not up yet, or busy booting
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} never became ready; last answer: {last and last.text}")


def healthy(port: int, process=None, timeout: float = 120.0):
    return wait_for(f"http://127.0.0.1:{port}/healthz",
                    lambda r: r.ok and r.json()["status"] == "ok", process, timeout)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def descendants_of(pid: int) -> list[int]:
    found, todo = [], children_of(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo += children_of(child)
    return found


class SlowClients:
    """`count` connections on loopback that never finish their request: half send headers a
    line at a time, half a form body a byte at a time (each every half second), for at most
    `seconds`. A server that gives each of them a thread until its request is whole is busy."""

    def __init__(self, port: int, count: int = 100, seconds: float = 30.0) -> None:
        self.port, self.count, self.seconds = port, count, seconds
        self.sockets: list[socket.socket] = []
        self.stop = threading.Event()

    def __enter__(self) -> SlowClients:
        for number in range(self.count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            if number % 2:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            else:
                sock.sendall(b"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Content-Type: application/x-www-form-urlencoded\r\n"
                             b"Content-Length: 100000\r\n\r\nemail=")
            self.sockets.append(sock)
        threading.Thread(target=self._trickle, daemon=True).start()
        return self

    def _trickle(self) -> None:
        deadline = time.monotonic() + self.seconds
        while not self.stop.wait(0.5) and time.monotonic() < deadline:
            for number, sock in enumerate(self.sockets):
                try:
                    sock.send(b"X-Slow: 1\r\n" if number % 2 else b"a")
                except OSError:
                    pass

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for sock in self.sockets:
            sock.close()


def answer_times(url: str, count: int = 10, timeout: float = 5.0) -> list[float | None]:
    """Seconds each of `count` concurrent GETs took to be answered (None: not answered)."""
    times: list[float | None] = [None] * count

    def get(index: int) -> None:
        started = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer:
                answer.read()
            times[index] = time.monotonic() - started
        except OSError:
            pass
    threads = [threading.Thread(target=get, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times
