"""Rate limits shared by every process: fixed-window counters in Redis (with an in-process
fallback while Redis is away), for whatever the public can call often - form submissions, the
events API, unsubscribe and tracking links, tests sent from the admin."""
from __future__ import annotations

import threading
import time
from typing import Any

import redis
from flask import current_app

from engine.jobs import connection


def client_ip(request: Any) -> str:
    """The client's address (behind reverse proxies, set `TRUSTED_PROXIES`)."""
    return (request.remote_addr or "")[:45]


class RateLimiter:
    """Fixed-window counters in Redis, with an in-process fallback while Redis is away."""

    RETRY_REDIS_AFTER = 5.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local: dict[str, tuple[float, int]] = {}
        self._redis_down_until = 0.0

    def hit(self, key: str, limit: int, window: int) -> bool:
        """Count one hit; True while `key` stays within `limit` hits per `window` seconds."""
        return self.hit_all([(key, limit)], window)[0]

    def hit_all(self, limits: list[tuple[str, int]], window: int) -> list[bool]:
        """Count one hit on each `(key, limit)`, all in one round trip to Redis; for each, True
        while it stays within its limit per `window` seconds. A limit of 0 or less is off."""
        counted = [(key, limit) for key, limit in limits if limit > 0]
        if not counted:
            return [True] * len(limits)
        slot = int(time.time() // window)
        buckets = [f"magnet:rl:{key}:{slot}" for key, _ in counted]
        counts = None
        if time.monotonic() >= self._redis_down_until:
            counts = self._count_in_redis(buckets, window)
        if counts is None:
            counts = [self._count_locally(bucket, window) for bucket in buckets]
        each = iter(counts)  # one count per limit that is on, in order
        return [limit <= 0 or next(each) <= limit for _, limit in limits]

    def _count_in_redis(self, buckets: list[str], window: int) -> list[int] | None:
        try:
            with connection().pipeline(transaction=False) as pipe:
                for bucket in buckets:
                    pipe.incr(bucket)
                    pipe.expire(bucket, window + 1)
                return [int(count) for count in pipe.execute()[::2]]
        except (redis.RedisError, OSError):
            self._redis_down_until = time.monotonic() + self.RETRY_REDIS_AFTER
            return None

    def first_use(self, key: str, seconds: int) -> bool:
        """True the first time `key` is seen within `seconds`; False after."""
        name = f"magnet:once:{key}"
        if time.monotonic() >= self._redis_down_until:
            try:
                    return bool(connection().set(name, "1", nx=True, ex=seconds))
            except (redis.RedisError, OSError):
                self._redis_down_until = time.monotonic() + self.RETRY_REDIS_AFTER
        return self._count_locally(name, seconds) == 1

    def _count_locally(self, bucket: str, window: int) -> int:
        now = time.monotonic()
        with self._lock:
            if len(self._local) > 50_000:  # bounded memory under a flood
                self._local = {k: v for k, v in self._local.items() if v[0] > now}
            expires, count = self._local.get(bucket, (now + window, 0))
            self._local[bucket] = (expires, count + 1)
        return count + 1


class BlockLimits:
    """Limits counted per process and reported to the shared `RateLimiter` in blocks.

    A round trip to Redis per hit costs more than the rest of a cheap request (a beacon hit,
    an event accepted by the API), so each process counts a key's hits itself and reports
    them to the shared counter once every block of hits: a key sending a process fewer hits
    than a block in a window costs no round trip at all, a busy one a round trip per block.
    A block is `block` hits, or a hundredth of the limit when that is more (`SHARE`): a key
    allowed 100,000 hits a minute (an office behind one address, an integration sending
    events in bulk) need not report every tenth. Within one process a limit is exact; across
    processes a key can pass it by at most a block less one per process (the hits each
    counted and not yet reported): `block - 1`, or 1% of the limit.
    """

    SHARE = 100  # a block is at least 1/SHARE of its limit (1%)

    def __init__(self, window: int, block: int, max_keys: int = 100_000) -> None:
        self.window, self.block, self.max_keys = window, max(1, block), max_keys
        self.shared = RateLimiter()
        self.lock = threading.Lock()
        self.slot = 0
        self.counts: dict[str, int] = {}
        self.over: set[str] = set()  # keys refused this window: no need to ask again

    def admit(self, limits: list[tuple[str, int]]) -> bool:
        """Count one hit on each `(key, limit)` (a limit of 0 is off); False when one of them
        is spent for this window (a hit refused by this process's own count is not counted; one
        refused by the shared count, which it was reported to, is)."""
        limits = [(key, limit) for key, limit in limits if limit > 0]
        due = []
        with self.lock:
            slot = int(time.time() // self.window)
            if slot != self.slot or len(self.counts) > self.max_keys:  # bounded under a flood
                self.slot, self.counts, self.over = slot, {}, set()
            if any(key in self.over or self.counts.get(key, 0) >= limit
                   for key, limit in limits):
                return False
            for key, limit in limits:
                count = self.counts[key] = self.counts.get(key, 0) + 1
                block = max(self.block, limit // self.SHARE)
                if count % block == 0:
                    # the limit in whole blocks, rounded down: together the processes then pass
                    # it by at most block - 1 hits each (what each holds back unreported)
                    due.append((key, max(1, limit // block)))
        if not due:
            return True
        verdicts = self.shared.hit_all(due, self.window)
        if all(verdicts):
            return True
        with self.lock:
            self.over.update(key for (key, _), ok in zip(due, verdicts) if not ok)
        return False


def limiter() -> RateLimiter:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    found = app.extensions.get("magnet.limiter")
    if found is None:
        found = app.extensions["magnet.limiter"] = RateLimiter()
    return found
