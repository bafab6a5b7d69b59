"""The public side: the beacon endpoint, the no-script pixel, and the tags placed on pages.

Pages are cached, so everything on them is the same for every visitor: the script reads its
settings from its tag, the visitor id cookie is set by the beacon's response, and the page token
(signed, one per day, accepted for `TOKEN_DAYS`) only proves that a hit comes from one of our
pages, not who sent it. Hits without it are refused: they did not come from the script.

The beacon is an edge route (answered ahead of Flask's request cycle) doing a fraction of a
millisecond of work: checks, a hand-over to `handover` (which reaches Redis, or the database when
Redis is down, within 50 ms), 204.
"""
from __future__ import annotations

import json
import time
from typing import Any

from flask import Blueprint, current_app, request, url_for
from itsdangerous import BadSignature, URLSafeSerializer
from markupsafe import Markup
from werkzeug.http import parse_cookie
from werkzeug.wsgi import get_host

from engine.contacts import visitors
from engine.web.edge import Answer, Headers, json_answer
from plugins.tracking import clean, handover
from plugins.tracking.settings import settings

blueprint = Blueprint("tracking", __name__)

EVENT_PATH = "/t/event"

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


def refusal(status: int, message: str) -> Answer:
    return json_answer(status, {"error": message})


def flask_reply(answer: Answer) -> tuple[bytes, int, Headers]:
    status, headers, body = answer
    return body, status, headers


def ignored(environ: dict[str, Any], cookies: Any, options: dict[str, Any],
            payload: dict[str, Any]) -> bool:
    """Hits that must not be recorded: privacy signals, missing consent, bots."""
    if options["honour_dnt"] and (environ.get("HTTP_DNT") == "1"
                                  or environ.get("HTTP_SEC_GPC") == "1"):
        return True
    if options["consent_mode"] and cookies.get(CONSENT_COOKIE) != "yes":
        return True
    agent = environ.get("HTTP_USER_AGENT", "")
    return options["filter_bots"] and (clean.is_bot_agent(agent) or bool(payload.get("w")))


def record(environ: dict[str, Any], payload: dict[str, Any]) -> tuple[str, Headers]:
    """Check and queue one hit: (why it was refused, or "" when it was not; headers to send,
    the new visitor's cookie). Headers and cookies are read from the WSGI environ."""
    cookies = parse_cookie(environ.get("HTTP_COOKIE", ""))
    options = settings()
    if ignored(environ, cookies, options, payload):
        return "", []
    visitor_id = visitors.verified_id(cookies.get(visitors.COOKIE))
    new_visitor = visitor_id is None
    visitor_id = visitor_id or visitors.new_visitor_id()
    try:
        event = clean.event(payload, host=get_host(environ),
                            agent=environ.get("HTTP_USER_AGENT", ""),
                            ip=environ.get("REMOTE_ADDR", ""), ip_mode=options["ip_storage"],
                            visitor_id=visitor_id, language=environ.get("HTTP_ACCEPT_LANGUAGE", ""))
    except clean.BadEvent as exc:
        return str(exc), []
    handover.push(event)
    https = environ.get("wsgi.url_scheme") == "https"
    return "", [("Set-Cookie", visitors.cookie_header(visitor_id, https))] if new_visitor else []


def read_body(environ: dict[str, Any], limit: int) -> bytes | None:
    """At most `limit` bytes of the request body; None when it is longer."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        return None
    if length > limit:
        return None
    if length < 0 and not environ.get("wsgi.input_terminated"):
        return b""  # neither a length nor a server that ends the stream: no body to read
    body = environ["wsgi.input"].read(limit + 1 if length < 0 else length)
    return None if len(body) > limit else body


def event(environ: dict[str, Any]) -> Answer:
    """The beacon, an edge route: one event as a JSON object in a text/plain body (what
    sendBeacon sends). It runs for every page view and click of every visitor, so it skips
    Flask's request cycle (see `engine.web.edge`)."""
    body = read_body(environ, clean.MAX_BODY)
    if body is None:
        return refusal(413, "event too large")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return refusal(400, "the body must be a JSON object")
    if not isinstance(payload, dict):
        return refusal(400, "the body must be a JSON object")
    if not token_valid(payload.get("k")):
        return refusal(403, "missing or expired page token")
    refused, headers = record(environ, payload)
    if refused:
        return refusal(400, refused)
    return 204, [("Cache-Control", "no-store"), *headers], b""


@blueprint.get("/t/pixel.gif")
def pixel() -> Any:
    """The fallback for browsers without JavaScript: a page view, URL from the Referer."""
    if not token_valid(request.args.get("k")):
        return flask_reply(refusal(403, "missing or expired page token"))
    page = request.referrer or request.args.get("u", "")
    refused, headers = record(request.environ, {"t": "page_view", "u": page, "ns": 1})
    if refused:
        return flask_reply(refusal(400, refused))
    return PIXEL, 200, [("Content-Type", "image/gif"), ("Cache-Control", "no-store"), *headers]


def tags(page_request: Any) -> Markup:
    """The script tag (and its no-script pixel) placed at the end of every public page."""
    options = settings()
    token = page_token()
    script = url_for("plugin_static", slug="tracking", filename="t.js")
    parts = [Markup('<script src="{}" data-e="{}" data-k="{}" data-d="{}" data-c="{}" async>'
                    '</script>').format(script, page_request.script_root + EVENT_PATH, token,
                                        int(bool(options["honour_dnt"])),
                                        int(bool(options["consent_mode"])))]
    if options["consent_mode"]:
        parts.append(Markup('<script src="{}" async></script>').format(
            url_for("plugin_static", slug="tracking", filename="consent.js")))
    else:
        # The page's address on the site's own base: a forged Host header must not reach the
        # cached page every visitor gets.
        base = (current_app.config.get("SITE_URL") or page_request.host_url).rstrip("/")
        pixel_url = url_for("tracking.pixel", k=token, u=base + page_request.path)
        parts.append(Markup('<noscript><img src="{}" alt="" width="1" height="1" '
                            'style="position:absolute;left:-9999px"></noscript>').format(pixel_url))
    return Markup("\n").join(parts)

