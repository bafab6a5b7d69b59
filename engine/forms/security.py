"""Spam and forgery defences for public forms, built to work on cached pages.

Public pages are cached and shared between anonymous visitors, so a per-session CSRF token
(Flask-WTF's) cannot be used: every visitor would get the same cached session token, or none.
Instead each rendered form carries a *signed, time-limited token not tied to a session*:
`{form slug, fields shown, issued-at}` signed with the app's secret (itsdangerous). It proves
the form was rendered by this site recently and which fields it asked; it does not identify the
visitor. Cross-site forgery is then stopped by two more checks that need no session:
- the browser's `Origin` (or `Sec-Fetch-Site`) header must name this site when present, which
  every current browser sends on cross-site POSTs;
- the visitor cookie is `SameSite=Lax`, so a cross-site POST never carries it and cannot tie a
  victim's browsing history to an attacker's email address.

Spam without CAPTCHA: a honeypot field people never see, a minimum time between rendering and
submitting (taken from the token's own timestamp), and per-IP and per-email rate limits kept in
Redis. When Redis is down the limits fall back to this process's memory: looser across several
processes, but a visitor is never refused because a cache is away.
"""
from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import urlsplit

import redis
from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

HONEYPOT = "website"  # a plausible name bots like to fill
TOKEN_FIELD = "_token"


class TokenError(ValueError):
    pass


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"magnet.forms.{purpose}")


def sign(purpose: str, data: Any) -> str:
    return _serializer(purpose).dumps(data)


def unsign(purpose: str, token: str, max_age: int) -> Any:
    """The signed data, or TokenError (forged, tampered, or older than `max_age` seconds)."""
    if not token or len(token) > 4000:
        raise TokenError("missing")
    try:
        return _serializer(purpose).loads(token, max_age=max_age)
    except SignatureExpired:
        raise TokenError("expired") from None
    except BadSignature:
        raise TokenError("forged") from None


def form_token(slug: str, shown: list[str]) -> str:
    return sign("token", {"f": slug, "s": shown})


def check_form_token(token: str, slug: str) -> tuple[list[str], float]:
    """The field names the form showed and the seconds since it was rendered."""
    max_age = int(current_app.config["FORM_TOKEN_MAX_AGE"])
    if not token or len(token) > 4000:
        raise TokenError("missing")
    try:
        data, issued = _serializer("token").loads(token, max_age=max_age, return_timestamp=True)
    except SignatureExpired:
        raise TokenError("expired") from None
    except BadSignature:
        raise TokenError("forged") from None
    if not isinstance(data, dict) or data.get("f") != slug or not isinstance(data.get("s"), list):
        raise TokenError("forged")
    return [str(n) for n in data["s"]], time.time() - issued.timestamp()


def same_origin(request: Any) -> bool:
    """False when the browser says the POST came from another site."""
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return False
    origin = request.headers.get("Origin")
    if origin is None:  # old browsers and non-browser clients send none; the token still applies
        return True
    if origin == "null":  # sandboxed frames, data: URLs
        return False
    here = urlsplit(request.host_url)
    there = urlsplit(origin)
    return (there.scheme, there.netloc) == (here.scheme, here.netloc)


class RateLimiter:
    """Fixed-window counters in Redis, with an in-process fallback while Redis is away."""

    RETRY_REDIS_AFTER = 5.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local: dict[str, tuple[float, int]] = {}
        self._redis_down_until = 0.0

    def hit(self, key: str, limit: int, window: int) -> bool:
        """Count one hit; True while `key` stays within `limit` hits per `window` seconds."""
        if limit <= 0:
            return True
        bucket = f"magnet:rl:{key}:{int(time.time() // window)}"
        if time.monotonic() >= self._redis_down_until:
            try:
                from engine.jobs import connection
                conn = connection()
                with conn.pipeline(transaction=False) as pipe:
                    pipe.incr(bucket)
                    pipe.expire(bucket, window + 1)
                    count = pipe.execute()[0]
                return int(count) <= limit
            except (redis.RedisError, OSError):
                self._redis_down_until = time.monotonic() + self.RETRY_REDIS_AFTER
        return self._hit_locally(bucket, limit, window)

    def _hit_locally(self, bucket: str, limit: int, window: int) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._local) > 50_000:  # bounded memory under a flood
                self._local = {k: v for k, v in self._local.items() if v[0] > now}
            expires, count = self._local.get(bucket, (now + window, 0))
            self._local[bucket] = (expires, count + 1)
        return count + 1 <= limit


def limiter() -> RateLimiter:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    found = app.extensions.get("magnet.forms.limiter")
    if found is None:
        found = app.extensions["magnet.forms.limiter"] = RateLimiter()
    return found
