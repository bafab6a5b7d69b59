"""Sign-in and reset throttling: counters in Redis, shared by every web process.

When Redis cannot be reached the counters fall back to this process's memory: the limit then
applies per process instead of per site, which is weaker but never lets an attacker through
unlimited, and never locks a person out because Redis is down.
"""
from __future__ import annotations

import hashlib
import threading
import time

import redis

from engine.jobs import connection

_local: dict[str, tuple[int, float]] = {}
_lock = threading.Lock()


def _key(kind: str, value: str) -> str:
    digest = hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]
    return f"magnet:throttle:{kind}:{digest}"


def _local_count(key: str) -> tuple[int, int]:
    with _lock:
        count, until = _local.get(key, (0, 0.0))
        if until <= time.monotonic():
            _local.pop(key, None)
            return 0, 0
        return count, int(until - time.monotonic()) + 1


def count(kind: str, value: str) -> tuple[int, int]:
    """`(attempts, seconds until the window ends)` for one account or address."""
    key = _key(kind, value)
    try:
        pipe = connection().pipeline()
        pipe.get(key)
        pipe.ttl(key)
        raw, ttl = pipe.execute()
        return int(raw or 0), max(int(ttl or 0), 0)
    except (redis.RedisError, OSError):
        return _local_count(key)


def hit(kind: str, value: str, window: int) -> None:
    key = _key(kind, value)
    try:
        pipe = connection().pipeline()
        pipe.set(key, 0, ex=window, nx=True)  # the window starts at the first failure
        pipe.incr(key)
        pipe.execute()
    except (redis.RedisError, OSError):
        with _lock:
            count_, until = _local.get(key, (0, time.monotonic() + window))
            _local[key] = (count_ + 1, until)


def clear(kind: str, value: str) -> None:
    key = _key(kind, value)
    try:
        connection().delete(key)
    except (redis.RedisError, OSError):
        pass
    with _lock:
        _local.pop(key, None)


def blocked_for(checks: list[tuple[str, str, int]]) -> int:
    """Seconds to wait when any `(kind, value, limit)` reached its limit, else 0."""
    wait = 0
    for kind, value, limit in checks:
        attempts, ttl = count(kind, value)
        if attempts >= limit:
            wait = max(wait, ttl or 1)
    return wait
