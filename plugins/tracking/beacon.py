"""The public side: the beacon endpoint, the no-script pixel, and the tags placed on pages.

Pages are cached, so everything on them is the same for every visitor: the script reads its
settings from its tag, the visitor id cookie is set by the beacon's response, and the page token
(signed, one per day, accepted for `TOKEN_DAYS`) only proves that a hit comes from one of our
pages, not who sent it. Hits without it are refused: they did not come from the script.

The endpoint does a fraction of a millisecond of work: checks, one Redis RPUSH, 204. When
Redis is unreachable it stores the event itself, so nothing is lost.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis
from flask import Blueprint, Response, current_app, jsonify, request, url_for
from itsdangerous import BadSignature, URLSafeSerializer
from markupsafe import Markup

from engine.contacts import visitors
from plugins.tracking import buffer, clean, ingest
from plugins.tracking.settings import settings

log = logging.getLogger("magnet.tracking")

blueprint = Blueprint("tracking", __name__)

TOKEN_DAYS = 30
CONSENT_COOKIE = "magnet_consent"
PIXEL = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
         b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


def _signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="magnet.tracking.page")


def page_token() -> str:
    return _signer().dumps(int(time.time() // 86400))


def token_valid(token: Any) -> bool:
    """Whether the page token is ours and recent; the few valid ones are remembered, since every
    page of a day carries the same one."""
    if not isinstance(token, str) or len(token) > 100:
        return False
    known = current_app.extensions.setdefault("tracking.tokens", {})
    day = known.get(token)
    if day is None:
        try:
            day = _signer().loads(token)
        except BadSignature:
            return False
        if len(known) > 64:
            known.clear()
        known[token] = day
    today = int(time.time() // 86400)
    return isinstance(day, int) and today - TOKEN_DAYS <= day <= today + 1


def refusal(status: int, message: str) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def ignored(options: dict[str, Any], payload: dict[str, Any]) -> bool:
    """Hits that must not be recorded: privacy signals, missing consent, bots."""
    headers = request.headers
    if options["honour_dnt"] and (headers.get("DNT") == "1" or headers.get("Sec-GPC") == "1"):
        return True
    if options["consent_mode"] and request.cookies.get(CONSENT_COOKIE) != "yes":
        return True
    agent = headers.get("User-Agent", "")
    return options["filter_bots"] and (clean.is_bot_agent(agent) or bool(payload.get("w")))


def accept(payload: dict[str, Any], answer: Response) -> Response:
    """Validate, queue (or store directly) and answer; never raises."""
    options = settings()
    if ignored(options, payload):
        return answer
    visitor_id = visitors.visitor_id(request)
    new_visitor = visitor_id is None
    visitor_id = visitor_id or visitors.new_visitor_id()
    try:
        event = clean.event(payload, host=request.host, agent=request.headers.get("User-Agent", ""),
                            ip=request.remote_addr or "", ip_mode=options["ip_storage"],
                            visitor_id=visitor_id,
                            language=request.headers.get("Accept-Language", ""))
    except clean.BadEvent as exc:
        return refusal(400, str(exc))
    try:
        buffer.push(event)
    except (redis.RedisError, OSError):
        try:
            ingest.store([event])
        except Exception:
            log.exception("tracking: could not store an event (Redis and database both failed)")
            response = refusal(503, "try again later")
            response.headers["Retry-After"] = "60"
            return response
    if new_visitor:
        visitors.set_visitor_cookie(answer, visitor_id)
    return answer


@blueprint.post("/t/event")
def event() -> Response:
    """The beacon: one event as a JSON object in a text/plain body (what sendBeacon sends)."""
    if (request.content_length or 0) > clean.MAX_BODY:
        return refusal(413, "event too large")
    body = request.stream.read(clean.MAX_BODY + 1)
    if len(body) > clean.MAX_BODY:
        return refusal(413, "event too large")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return refusal(400, "the body must be a JSON object")
    if not isinstance(payload, dict):
        return refusal(400, "the body must be a JSON object")
    if not token_valid(payload.get("k")):
        return refusal(403, "missing or expired page token")
    answer = Response(status=204)
    answer.headers["Cache-Control"] = "no-store"
    return accept(payload, answer)


@blueprint.get("/t/pixel.gif")
def pixel() -> Response:
    """The fallback for browsers without JavaScript: a page view, URL from the Referer."""
    if not token_valid(request.args.get("k")):
        return refusal(403, "missing or expired page token")
    page = request.referrer or request.args.get("u", "")
    answer = Response(PIXEL, mimetype="image/gif")
    answer.headers["Cache-Control"] = "no-store"
    return accept({"t": "page_view", "u": page, "ns": 1}, answer)


def tags(page_request: Any) -> Markup:
    """The script tag (and its no-script pixel) placed at the end of every public page."""
    options = settings()
    token = page_token()
    script = url_for("plugin_static", slug="tracking", filename="t.js")
    parts = [Markup('<script src="{}" data-e="{}" data-k="{}" data-d="{}" data-c="{}" async>'
                    '</script>').format(script, url_for("tracking.event"), token,
                                        int(bool(options["honour_dnt"])),
                                        int(bool(options["consent_mode"])))]
    if options["consent_mode"]:
        parts.append(Markup('<script src="{}" async></script>').format(
            url_for("plugin_static", slug="tracking", filename="consent.js")))
    else:
        pixel_url = url_for("tracking.pixel", k=token, u=page_request.base_url)
        parts.append(Markup('<noscript><img src="{}" alt="" width="1" height="1" '
                            'style="position:absolute;left:-9999px"></noscript>').format(pixel_url))
    return Markup("\n").join(parts)

