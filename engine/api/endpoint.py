"""`POST /api/v1/events`: one event as JSON, authenticated by an API key.

An edge route (`engine.web.edge`): integrations send events in bursts, and Flask's request
cycle would cost more than storing one. It takes
    Authorization: Bearer <key>           (Admin → API keys)
    Content-Type: application/json
    Idempotency-Key: <up to 200 characters>   (optional; or "idempotency_key" in the body)
    {"email": "...", "type": "purchase", "properties": {...}, "occurred_at": "...Z"}
and answers 201 with the event's and contact's ids (200 and `"duplicate": true` for a repeat of
an idempotency key), or 400/401/413/415/429 with `{"error": "..."}` saying what is wrong.
"""
from __future__ import annotations

import json
from typing import Any

from flask import current_app

from engine.api import intake, keys
from engine.forms.security import limiter
from engine.web.edge import Answer, EdgeRoute, json_answer, read_body

PATH = "/api/v1/events"


def _refuse(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Answer:
    return json_answer(status, {"error": message}, headers)


def _key_of(environ: dict[str, Any]) -> str:
    scheme, _, value = (environ.get("HTTP_AUTHORIZATION") or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def events(environ: dict[str, Any]) -> Answer:
    key_id = keys.check(_key_of(environ))
    if key_id is None:
        return _refuse(401, "An API key is required: send “Authorization: Bearer <key>” with a "
                            "key from Admin → API keys.", [("WWW-Authenticate", "Bearer")])
    config = current_app.config
    if not limiter().hit(f"api:{key_id}", int(config["API_RATE_LIMIT"]),
                         int(config["API_RATE_WINDOW"])):
        return _refuse(429, "Too many requests for this key; slow down and retry.",
                       [("Retry-After", str(config["API_RATE_WINDOW"]))])
    if (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower() != "application/json":
        return _refuse(415, "Send the event as JSON (Content-Type: application/json).")
    body = read_body(environ, int(config["API_MAX_BYTES"]))
    if body is None:
        return _refuse(413, f"The body is larger than {config['API_MAX_BYTES']} bytes.")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return _refuse(400, "The body is not valid JSON.")
    if not isinstance(payload, dict):
        return _refuse(400, "The body must be a JSON object with “email” and “type”.")
    unknown = sorted(set(payload) - {"email", "type", "properties", "occurred_at",
                                     "idempotency_key"})
    if unknown:
        return _refuse(400, f"Unknown field “{unknown[0]}”; an event has email, type, "
                            "properties, occurred_at and idempotency_key.")
    idempotency_key = environ.get("HTTP_IDEMPOTENCY_KEY") or payload.get("idempotency_key")
    try:
        recorded = intake.record_external(
            payload.get("email"), payload.get("type"), payload.get("properties"),
            payload.get("occurred_at"), idempotency_key=idempotency_key, api_key_id=key_id)
    except intake.IntakeError as exc:
        return _refuse(400, str(exc))
    return json_answer(200 if recorded.duplicate else 201, recorded.as_json())


ROUTE = EdgeRoute("POST", PATH, events)
