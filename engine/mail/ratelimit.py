"""The global send rate: messages per second, per hour and per day (warm-up), across every
worker, counted in Redis.

Providers cap how fast an account may send (Amazon SES starts at 14 per second and 200 per
day) and a new sending domain or IP must warm up: a few hundred messages on day one, then more
each day, or the receiving side throttles and spam-folders it. One fixed-window counter per
second, hour and day is shared by all workers, so two workers never send twice the rate.

Over the second's limit a worker waits for the next second (at most a second). Over the hour's
or the day's it stops: `RateLimited` tells the sender to give the batch back, and the outbox
runs it again when the window turns. Without Redis the per-second limit is kept per process
(one worker's pace), and the hour and day limits are not counted.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis

from engine.db import utcnow
from engine.jobs import connection
from engine.mail import settings

PREFIX = "magnet:mail:rate:"


class RateLimited(Exception):
    """The hour's or day's allowance is used up; try again after `retry_after`."""

    def __init__(self, message: str, retry_after: timedelta) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Limiter:
    per_second: int = 0  # 0: no limit
    per_hour: int = 0
    per_day: int = 0  # the warm-up schedule's allowance for today, 0 when none
    sleep: Callable[[float], None] = time.sleep
    _last: float = 0.0

    @property
    def unlimited(self) -> bool:
        return not (self.per_second or self.per_hour or self.per_day)

    @classmethod
    def from_settings(cls) -> Limiter:
        values = settings.transport_config()
        return cls(per_second=int(values.get("MAIL_RATE_PER_SECOND") or 0),
                   per_hour=int(values.get("MAIL_RATE_PER_HOUR") or 0),
                   per_day=settings.warmup_allowance(utcnow()))

    def wait(self) -> None:
        """Block until one more message may go now, or raise `RateLimited`."""
        if self.unlimited:
            return
        try:
            self._take(utcnow())
        except (redis.RedisError, OSError):
            self._local_pace()

    def _take(self, now: datetime) -> None:
        client = connection()
        while True:
            second = int(now.timestamp())
            keys = []
            if self.per_second:
                keys.append((f"{PREFIX}s:{second}", self.per_second, 2))
            if self.per_hour:
                keys.append((f"{PREFIX}h:{second // 3600}", self.per_hour, 3700))
            if self.per_day:
                keys.append((f"{PREFIX}d:{now.date().isoformat()}", self.per_day, 90000))
            pipe = client.pipeline()
            for key, _limit, ttl in keys:
                pipe.incr(key)
                pipe.expire(key, ttl)
            counts = pipe.execute()[::2]
            over = [(key, limit) for (key, limit, _), count in zip(keys, counts)
                    if count > limit]
            if not over:
                return
            for key, _limit, _ttl in keys:  # this message did not go: give the slots back
                client.decr(key)
            key, limit = over[0]
            if ":d:" in key:
                tomorrow = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(),
                                            tzinfo=now.tzinfo)
                raise RateLimited(f"today's warm-up allowance of {limit} is used up",
                                  tomorrow - now)
            if ":h:" in key:
                raise RateLimited(f"the hourly limit of {limit} is reached",
                                  timedelta(seconds=3600 - second % 3600))
            self.sleep(max(0.0, second + 1 - now.timestamp()))
            now = utcnow()

    def _local_pace(self) -> None:
        if not self.per_second:
            return
        gap = 1.0 / self.per_second - (time.monotonic() - self._last)
        if gap > 0:
            self.sleep(gap)
        self._last = time.monotonic()
