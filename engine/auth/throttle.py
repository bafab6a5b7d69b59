"""Sign-in and reset throttling: counters in Redis, shared by every web process.

An attempt is counted *before* it is evaluated, in one atomic step that also answers whether it
is over the limit: sixty simultaneous guesses get exactly as many evaluations as the limit
allows, never "check, then count" with every request passing the check at once.

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

Check = tuple[str, str, int, int]  # kind, value (an address, an account), limit, window (s)


def _key(kind: str, value: str) -> str:
    digest = hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]
    return f"magnet:throttle:{kind}:{digest}"


def attempt(checks: list[Check]) -> int:
    """Count one attempt on each check; the seconds to wait when any is now over its limit
    (the attempt must then be refused unevaluated), else 0."""
    keys = [(_key(kind, value), limit, window) for kind, value, limit, window in checks]
    try:
        pipe = connection().pipeline(transaction=True)
        for key, _, window in keys:
            pipe.set(key, 0, ex=window, nx=True)  # the window starts at the first attempt
            pipe.incr(key)
            pipe.ttl(key)
        replies = pipe.execute()
        counted = [(int(replies[i + 1]), max(int(replies[i + 2]), 1))
                   for i in range(0, len(replies), 3)]
    except (redis.RedisError, OSError):
        counted = [_count_locally(key, window) for key, _, window in keys]
    return max((ttl for (count, ttl), (_, limit, _) in zip(counted, keys) if count > limit),
               default=0)


def _count_locally(key: str, window: int) -> tuple[int, int]:
    now = time.monotonic()
    with _lock:
        count, until = _local.get(key, (0, now + window))
        if until <= now:
            count, until = 0, now + window
        _local[key] = (count + 1, until)
    return count + 1, int(until - now) + 1


UNCOUNT = ("local n = tonumber(redis.call('GET', KEYS[1]) or '0') "
           "if n > 0 then return redis.call('DECR', KEYS[1]) end return 0")


def uncount(kind: str, value: str) -> None:
    """Take back one attempt counted on `(kind, value)`: a sign-in that succeeded is no guess,
    so it must not bring an address (an office behind one router) nearer its lockout."""
    key = _key(kind, value)
    try:
        connection().eval(UNCOUNT, 1, key)
    except (redis.RedisError, OSError):
        pass
    with _lock:
        if key in _local:
            count, until = _local[key]
            _local[key] = (max(count - 1, 0), until)


def clear(kind: str, value: str) -> None:
    key = _key(kind, value)
    try:
        connection().delete(key)
    except (redis.RedisError, OSError):
        pass
    with _lock:
        _local.pop(key, None)
