"""The events API's floor: the least any synchronous implementation of `POST /api/v1/events`
must do, written by hand on sqlite3 and redis-py with nothing of Magnet.

Per request: the bearer key hashed and looked up (remembered for 2 s, as Magnet does, so a
revoked key stops working within that time), the key's rate limit counted in Redis (one
round trip), the JSON parsed and the purchase's properties checked against their types, then
ONE transaction that stores what the product requires - the contact (created, consent
unknown, or touched), the event on the timeline and in the delivery queue, and the
idempotency key - and after it the delivery worker's wake-up (one more round trip). No worker
delivers anything, so it is an upper bound for the endpoint on this machine, not a competitor.
Served with gunicorn as the baselines are (`bench.baselines`).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import UTC, datetime
from typing import Any

from flask import Flask, request

from bench.baselines import EVENTS_KEY, _connect, _PerThreadConnection, database_path

TABLES = (
    "CREATE TABLE IF NOT EXISTS api_keys (id INTEGER PRIMARY KEY, key_hash TEXT UNIQUE, "
    "revoked_at TEXT)",
    "CREATE TABLE IF NOT EXISTS contacts (id INTEGER PRIMARY KEY, email TEXT UNIQUE NOT NULL, "
    "consent TEXT, first_touch TEXT, last_touch TEXT, created_at TEXT, updated_at TEXT)",
    "CREATE TABLE IF NOT EXISTS activities (id INTEGER PRIMARY KEY, contact_id INTEGER, "
    "type TEXT, properties TEXT, occurred_at TEXT)",
    "CREATE TABLE IF NOT EXISTS event_queue (seq INTEGER PRIMARY KEY, partition INTEGER, "
    "event_id INTEGER)",
    "CREATE TABLE IF NOT EXISTS api_idempotency (id INTEGER PRIMARY KEY, api_key_id INTEGER, "
    "key TEXT, event_id INTEGER, contact_id INTEGER, request_hash TEXT, created_at TEXT, "
    "UNIQUE (api_key_id, key))",
)
PROPERTIES = {"order_id": str, "amount": (int, float), "currency": str, "product": str}


def events_floor_app() -> Flask:
    import redis

    path = database_path()
    connection = _connect(path)
    try:
        for statement in TABLES:
            connection.execute(statement)
        connection.execute("INSERT OR IGNORE INTO api_keys (key_hash) VALUES (?)",
                           (hashlib.sha256(EVENTS_KEY.encode()).hexdigest(),))
        connection.commit()
    finally:
        connection.close()
    connections = _PerThreadConnection(path)
    limiter = redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379"))
    keys: dict[str, tuple[int | None, float]] = {}
    app = Flask("baseline_events_floor")

    def key_id(sent: str) -> int | None:
        digest = hashlib.sha256(sent.encode()).hexdigest()
        hit = keys.get(digest)
        if hit is not None and time.monotonic() - hit[1] < 2.0:
            return hit[0]
        row = connections.get().execute(
            "SELECT id FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
            (digest,)).fetchone()
        keys[digest] = (row[0] if row else None, time.monotonic())
        return keys[digest][0]

    @app.get("/")
    def floor_ready() -> str:
        return "ready"

    @app.post("/api/v1/events")
    def floor_event() -> Any:
        scheme, _, sent = (request.headers.get("Authorization") or "").partition(" ")
        found = key_id(sent) if scheme == "Bearer" else None
        if found is None:
            return {"error": "An API key is required."}, 401
        bucket = f"floor:rl:{found}:{int(time.time())}"
        pipe = limiter.pipeline(transaction=False)
        pipe.incr(bucket)
        pipe.expire(bucket, 2)
        if pipe.execute()[0] > 10**12:
            return {"error": "Too many requests."}, 429
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict) or not isinstance(payload.get("email"), str) \
                or payload.get("type") != "purchase":
            return {"error": "Send an object with email and a declared type."}, 400
        properties = payload.get("properties") or {}
        if not isinstance(properties, dict) or any(
                name not in PROPERTIES or not isinstance(value, PROPERTIES[name])
                for name, value in properties.items()):
            return {"error": "A property is unknown or of the wrong type."}, 400
        email = payload["email"].strip().lower()
        now = datetime.now(UTC).isoformat()
        idempotency_key = payload.get("idempotency_key")
        db = connections.get()
        db.execute("BEGIN IMMEDIATE")
        try:
            contact_id = db.execute(
                "INSERT INTO contacts (email, consent, first_touch, last_touch, created_at, "
                "updated_at) VALUES (?, 'unknown', ?, ?, ?, ?) ON CONFLICT (email) DO UPDATE "
                "SET last_touch = excluded.last_touch, updated_at = excluded.updated_at "
                "RETURNING id", (email, '{"source": "api"}', '{"source": "api"}', now,
                                 now)).fetchone()[0]
            event_id = db.execute(
                "INSERT INTO activities (contact_id, type, properties, occurred_at) "
                "VALUES (?, ?, ?, ?) RETURNING id",
                (contact_id, "purchase", json.dumps(properties), now)).fetchone()[0]
            db.execute("INSERT INTO event_queue (partition, event_id) VALUES (?, ?)",
                       (contact_id % 64, event_id))
            if idempotency_key is not None:
                db.execute("INSERT INTO api_idempotency (api_key_id, key, event_id, contact_id, "
                           "request_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                           (found, idempotency_key, event_id, contact_id,
                            hashlib.sha256(request.get_data()).hexdigest(), now))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        limiter.set("floor:wake", "1", nx=True, ex=5)  # the delivery worker's wake-up
        return {"id": event_id, "contact_id": contact_id}, 201
    return app
