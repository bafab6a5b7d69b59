"""The Redis connection: `REDIS_URL` when set, else the embedded server of the instance folder."""
from __future__ import annotations

import atexit
import threading
from pathlib import Path

import redis
from flask import Flask, current_app
from redis.backoff import NoBackoff
from redis.retry import Retry

from engine.jobs.embedded import EmbeddedRedis

# Short timeouts and one immediate retry (a pooled connection Redis closed on a restart): when
# Redis is down a request must fall back at once, not sleep through the client's default
# backoff, which holds each failing command for seconds.
CLIENT_OPTIONS = {"socket_connect_timeout": 1.0, "socket_timeout": 5.0,
                  "health_check_interval": 30, "retry": Retry(NoBackoff(), 1)}


def redis_url(app: Flask) -> str:
    return app.config.get("REDIS_URL") or EmbeddedRedis(Path(app.instance_path)).url


_creating = threading.Lock()


def client_for(app: Flask) -> redis.Redis:
    """The app's Redis client (one connection pool per app).

    Made under a lock: two threads of a web process asking at once would otherwise each make
    one, and the client that lost the race, dropped, closes its pool's sockets while the other
    thread is still using one (seen as "I/O operation on closed file" in a request)."""
    client = app.extensions.get("magnet.redis")
    if client is None:
        with _creating:
            client = app.extensions.get("magnet.redis")
            if client is None:
                client = redis.Redis.from_url(redis_url(app), **CLIENT_OPTIONS)
                app.extensions["magnet.redis"] = client
    return client


def connection() -> redis.Redis:
    return client_for(current_app)


def ensure_embedded(app: Flask) -> EmbeddedRedis | None:
    """Start the embedded Redis if the app uses it and none answers; stopped at exit."""
    if app.config.get("REDIS_URL"):
        return None
    server = EmbeddedRedis(Path(app.instance_path))
    if server.start():
        atexit.register(server.stop)
        return server
    return None


def available() -> bool:
    try:
        return bool(connection().ping())
    except (redis.RedisError, OSError):
        return False
