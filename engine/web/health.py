"""`/healthz` for load balancers: database, Redis and worker heartbeats.

The status code follows what a visitor depends on: 503 only when the database is down. A site
without Redis or workers still serves pages and stores submissions (the outbox keeps the
follow-ups), so those report "degraded" with a 200.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import text

from engine.db import db
from engine.jobs import connection
from engine.jobs.worker import live_workers

health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz() -> Any:
    checks: dict[str, Any] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        db.session.rollback()
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        conn = connection()
        conn.ping()
        checks["redis"] = "ok"
        checks["workers"] = live_workers(conn)
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
        checks["workers"] = 0
    healthy = checks["redis"] == "ok" and checks["workers"] > 0
    checks["status"] = "ok" if checks["database"] == "ok" and healthy else (
        "degraded" if checks["database"] == "ok" else "down")
    response = jsonify(checks)
    response.status_code = 503 if checks["status"] == "down" else 200
    response.headers["Cache-Control"] = "no-store"
    return response
