"""`POST /api/v1/events`: one event as JSON, authenticated by an API key.

An edge route (`engine.web.edge`): integrations send events in bursts, and Flask's request
cycle would cost more than storing one. It takes
    Authorization: Bearer <key>           (Admin → API keys)
    Content-Type: application/json
    Idempotency-Key: <up to 200 characters>   (optional; or "idempotency_key" in the body)
    {"email": "...", "type": "purchase", "properties": {...}, "occurred_at": "...Z"}
checks it fully (the key, the key's rate limit, the event against its declared type), keeps it
in the intake with one INSERT (on SQLite committed together with the process's other requests
of the moment: `engine.api.group_commit`) and answers 202 `{"id": <intake id>, "status": "accepted",
"duplicate": false}`; a worker stores the contact and the event moments later
(`engine.api.drain`). A repeat of an idempotency key answers 200 with the first request's id,
`"duplicate": true`, and once the event is stored its `event_id` and `contact_id`. What is
wrong gets 400/401/413/415/422/429 with `{"error": "..."}` saying what, and nothing is kept.
Other methods at the address get a JSON 405 naming the one allowed.

The rate limit is counted per process and reported to the shared counter in blocks of
`API_RATE_BLOCK`, or of 1% of the limit when that is more (`engine.web.ratelimit.BlockLimits`),
so most requests make no round trip to Redis: exact within a process, up to a block less one
over per process across them.
"""
from __future__ import annotations

import json
from typing import Any

from flask import current_app

from engine.api import intake, keys
from engine.web.edge import Answer, EdgeRoute, json_answer, read_body
from engine.web.ratelimit import BlockLimits

PATH = "/api/v1/events"


def _refuse(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Answer:
    return json_answer(status, {"error": message}, headers)


def _key_of(environ: dict[str, Any]) -> str:
    scheme, _, value = (environ.get("HTTP_AUTHORIZATION") or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _limits() -> BlockLimits:
    """This process's counts of each key's requests (made with the window configured then)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    found = app.extensions.get("magnet.api.limits")
    if found is None:
        found = app.extensions["magnet.api.limits"] = BlockLimits(
            int(app.config["API_RATE_WINDOW"]), int(app.config["API_RATE_BLOCK"]))
    return found


def events(environ: dict[str, Any]) -> Answer:
    sent = _key_of(environ)
    if not sent:
        return _refuse(401, "An API key is required: send “Authorization: Bearer <key>” with a "
                            "key from Admin → API keys.", [("WWW-Authenticate", "Bearer")])
    key_id = keys.check(sent)
    if key_id is None:  # the same words for a key never made and one revoked: nothing to probe
        return _refuse(401, "This API key is not valid: it was mistyped or has been revoked. "
                            "Use an active key from Admin → API keys.",
                       [("WWW-Authenticate", 'Bearer error="invalid_token"')])
    config = current_app.config
    if not _limits().admit([(f"api:{key_id}", int(config["API_RATE_LIMIT"]))]):
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
    header_key = environ.get("HTTP_IDEMPOTENCY_KEY")  # sent empty: refused by the check
    body_key = payload.get("idempotency_key")
    if header_key is not None and body_key is not None and header_key != body_key:
        return _refuse(400, "Two different idempotency keys: the Idempotency-Key header and "
                            "“idempotency_key” in the body. Send it once, in the header.")
    try:
        accepted = intake.accept(
            payload.get("email"), payload.get("type"), payload.get("properties"),
            payload.get("occurred_at"),
            idempotency_key=header_key if header_key is not None else body_key,
            api_key_id=key_id)
    except intake.IdempotencyConflict as exc:
        return _refuse(422, str(exc))
    except intake.IntakeError as exc:
        return _refuse(400, str(exc))
    return json_answer(200 if accepted.duplicate else 202, accepted.as_json())


def not_allowed(environ: dict[str, Any]) -> Answer:
    """Any other method: what the address takes, rather than the site's HTML 404."""
    status, headers, body = _refuse(405, f"{PATH} takes POST only: send each event as a JSON "
                                         "object in the body of a POST.", [("Allow", "POST")])
    return status, headers, b"" if environ.get("REQUEST_METHOD") == "HEAD" else body


ROUTE = EdgeRoute("POST", PATH, events)
OTHER_METHODS = [EdgeRoute(method, PATH, not_allowed)
                 for method in ("GET", "HEAD", "PUT", "PATCH", "DELETE")]
