"""A load generator for machines without `wrk`: threads sending one request over and over.

It is slower than wrk (the GIL caps it at a few thousand requests per second), which is why the
harness prefers wrk; its output has the same shape, a `BENCH_JSON {...}` line, so the
harness reads both alike. Run by the harness as `python -m bench.pyclient ...`.
"""
from __future__ import annotations

import argparse
import http.client
import itertools
import json
import threading
import time
import urllib.parse
from pathlib import Path

UNIQUE = "{n}"
TOKEN = "{t}"


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", default="")
    parser.add_argument("--headers", default="{}")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--nonce", default="run")
    parser.add_argument("--lists", default="",
                        help="a JSON file of {\"cookies\": [Cookie headers, sent in turn], "
                             "\"tokens\": [values for {t} in the body, each once]}")
    options = parser.parse_args()

    url = urllib.parse.urlsplit(options.url)
    path = url.path + (f"?{url.query}" if url.query else "")
    headers = json.loads(options.headers)
    lists = json.loads(Path(options.lists).read_text()) if options.lists else {}
    cookies, tokens = lists.get("cookies", []), lists.get("tokens", [])
    numbers = itertools.count(1)
    errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    latencies: list[float] = []
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + options.duration

    def send() -> None:
        mine: list[float] = []
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
        while time.monotonic() < deadline:
            number = next(numbers)
            body = options.body.replace(UNIQUE, f"{options.nonce}n{number}")
            if tokens:
                body = body.replace(TOKEN, tokens[(number - 1) % len(tokens)])
            body = body or None
            sent = headers
            if cookies and cookies[number % len(cookies)]:
                sent = {**headers, "Cookie": cookies[number % len(cookies)]}
            began = time.perf_counter()
            try:
                connection.request(options.method, path, body=body, headers=sent)
                response = connection.getresponse()
                response.read()
            except TimeoutError:
                _count(errors, lock, "timeout")
                connection.close()
                continue
            except OSError:
                _count(errors, lock, "connect")
                connection.close()
                continue
            except http.client.HTTPException:
                _count(errors, lock, "read")
                connection.close()
                continue
            mine.append(time.perf_counter() - began)
            if response.status >= 400:
                _count(errors, lock, "status")
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=send) for _ in range(options.connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    figures = {"requests": len(latencies), "duration_us": int(elapsed * 1e6), **errors,
               **{f"p{p}_us": int(percentile(latencies, p) * 1e6) for p in (50, 90, 99)},
               "max_us": int((latencies[-1] if latencies else 0) * 1e6)}
    print("BENCH_JSON " + json.dumps(figures), flush=True)


def _count(errors: dict[str, int], lock: threading.Lock, kind: str) -> None:
    with lock:
        errors[kind] += 1


if __name__ == "__main__":
    main()
