"""The public side: the beacon endpoint, the no-script pixel, and the tags placed on pages.

Pages are cached, so everything on them is the same for every visitor of a page: the script
reads its settings from its tag, the visitor id cookie is set by the beacon's response, and the
page token (signed, one per day and page, accepted for `TOKEN_DAYS`) proves that a hit comes
from the script on that very page of this site, not who sent it. Hits without it are refused:
they did not come from the script; and hits about a page other than the token's are refused
too, so nobody can invent pages for the Traffic report.

What one client can write is bounded: `TRACKING_RATE_LIMIT` events a minute per address (an
IPv6 client by its /64), of which `TRACKING_NEW_VISITOR_LIMIT` from browsers without a visitor
cookie (each of those is a new visitor and visit), counted across processes (`limits`) and
answered 429 beyond. Only pages of
the site's own hosts count: `SITE_URL`'s host and any in `TRACKING_HOSTS`; without `SITE_URL`,
the host the request was sent to (the only reference left).

Pages whose address carries a secret (`engine.web.private_paths`: confirmation, thank-you,
asset and draft preview links) get no tag at all, so their address never leaves the browser.

The beacon is an edge route (answered ahead of Flask's request cycle) doing a fraction of a
millisecond of work: checks, a hand-over to `handover` (which reaches Redis, or the database when
Redis is down, within 50 ms), 204.
"""
from __future__ import annotations

import hashlib
import json
import time
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

from flask import Blueprint, current_app, request, url_for
from markupsafe import Markup
from werkzeug.http import parse_cookie
from werkzeug.wsgi import get_host

from engine.contacts import visitors
from engine.web import private_paths, signing
from engine.web.edge import Answer, Headers, json_answer, read_body
from plugins.tracking import clean, handover, limits
from plugins.tracking.settings import settings

blueprint = Blueprint("tracking", __name__)

EVENT_PATH = "/t/event"

TOKEN_DAYS = 30
KNOWN_TOKENS = 4096  # verified page tokens remembered per process (one per page and day)
CONSENT_COOKIE = "magnet_consent"
RATE_LIMIT = 600  # events a minute per address (TRACKING_RATE_LIMIT; 0 turns it off)
NEW_VISITOR_LIMIT = 120  # of which from browsers without a visitor cookie
PIXEL = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
         b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


class Refused(Exception):
    """A hit that is not recorded, with the status and the message to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@lru_cache(maxsize=8192)
def page_digest(path: str) -> str:
    """A short digest of a page's path as the browser's address bar has it, decoded (the
    server sees `/café`, the script's `location` `/caf%C3%A9`)."""
    return hashlib.blake2b(unquote(path).encode("utf-8", "surrogatepass"),
                           digest_size=6).hexdigest()


def page_token(path: str) -> str:
    """The token of the page at `path` (with the app's script root), for today."""
    return signing.sign("tracking.page", [int(time.time() // 86400), page_digest(path)])


def token_page(token: Any) -> str | None:
    """The page digest a token is for, when the token is ours and recent; else None. The
    valid ones are remembered, since every hit on a page of a day carries the same one."""
    if not isinstance(token, str) or len(token) > 100:
        return None
    known = current_app.extensions.setdefault("tracking.tokens", {})
    found = known.get(token)
    if found is None:
        try:
            found = signing.unsign("tracking.page", token)  # its day is checked below
        except signing.BadToken:
            return None
        if not (isinstance(found, list) and len(found) == 2 and isinstance(found[0], int)
                and isinstance(found[1], str)):
            return None
        if len(known) >= KNOWN_TOKENS:
            known.clear()
        known[token] = found
    day, digest = found
    today = int(time.time() // 86400)
    return digest if today - TOKEN_DAYS <= day <= today + 1 else None


def refusal(status: int, message: str) -> Answer:
    retry = [("Retry-After", str(limits.WINDOW))] if status == 429 else []
    return json_answer(status, {"error": message}, retry)


def flask_reply(answer: Answer) -> tuple[bytes, int, Headers]:
    status, headers, body = answer
    return body, status, headers


def ignored(environ: dict[str, Any], options: dict[str, Any], payload: dict[str, Any]) -> bool:
    """Hits that must not be recorded: privacy signals, missing consent, bots."""
    if options["honour_dnt"] and (environ.get("HTTP_DNT") == "1"
                                  or environ.get("HTTP_SEC_GPC") == "1"):
        return True
    if options["consent_mode"] and \
            parse_cookie(environ.get("HTTP_COOKIE", "")).get(CONSENT_COOKIE) != "yes":
        return True
    agent = environ.get("HTTP_USER_AGENT", "")
    return options["filter_bots"] and (clean.is_bot_agent(agent) or bool(payload.get("w")))


@lru_cache(maxsize=16)
def _configured_hosts(site_url: str, extra: str) -> frozenset[str]:
    names = [site_url, *extra.replace(",", " ").split()] if site_url else []
    return frozenset(filter(None, map(clean.site_host, names)))


def site_hosts(environ: dict[str, Any]) -> frozenset[str]:
    """The hosts whose pages are this site's: `SITE_URL`'s and `TRACKING_HOSTS`; without
    `SITE_URL`, the host the request was sent to."""
    config = current_app.config
    extra = config.get("TRACKING_HOSTS") or ""
    hosts = _configured_hosts((config.get("SITE_URL") or "").strip(),
                              extra if isinstance(extra, str) else " ".join(extra))
    return hosts or frozenset([get_host(environ).lower()])


def admit(environ: dict[str, Any], new_visitor: bool) -> None:
    """Count the hit against its address's limits (see `limits`); Refused beyond them."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    counter = app.extensions.get("tracking.limits")
    if counter is None:
        counter = app.extensions["tracking.limits"] = limits.AddressLimits()
    key = limits.client_key(environ.get("REMOTE_ADDR", ""))
    wanted = [(f"tracking:{key}", int(app.config.get("TRACKING_RATE_LIMIT", RATE_LIMIT)))]
    if new_visitor:
        wanted.append((f"tracking-new:{key}",
                       int(app.config.get("TRACKING_NEW_VISITOR_LIMIT", NEW_VISITOR_LIMIT))))
    if not counter.admit(wanted):
        raise Refused(429, "too many events from this address; try again in a minute")


def record(environ: dict[str, Any], payload: dict[str, Any], page: str) -> Headers:
    """Check and queue one hit about the page whose digest its token carries (`page`); returns
    the headers to send (the new visitor's cookie), or raises Refused. Headers and cookies are
    read from the WSGI environ."""
    options = settings()
    if ignored(environ, options, payload):
        return []
    visitor_id = visitors.verified_id(visitors.cookie_in(environ.get("HTTP_COOKIE", "")))
    new_visitor = visitor_id is None
    visitor_id = visitor_id or visitors.new_visitor_id()
    try:
        event = clean.event(payload, hosts=site_hosts(environ),
                            agent=environ.get("HTTP_USER_AGENT", ""),
                            ip=environ.get("REMOTE_ADDR", ""), ip_mode=options["ip_storage"],
                            visitor_id=visitor_id, language=environ.get("HTTP_ACCEPT_LANGUAGE", ""))
    except clean.BadEvent as exc:
        raise Refused(400, str(exc)) from None
    if page_digest(clean.host_and_path(event["u"])[1]) != page:
        raise Refused(400, "url is not the page the token was given to")
    admit(environ, new_visitor)
    handover.push(event)
    https = environ.get("wsgi.url_scheme") == "https"
    return [("Set-Cookie", visitors.cookie_header(visitor_id, https))] if new_visitor else []


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
    page = token_page(payload.get("k"))
    if page is None:
        return refusal(403, "missing or expired page token")
    try:
        headers = record(environ, payload, page)
    except Refused as refused:
        return refusal(refused.status, str(refused))
    return 204, [("Cache-Control", "no-store"), *headers], b""


@blueprint.get("/t/pixel.gif")
def pixel() -> Any:
    """The fallback for browsers without JavaScript: a page view, URL from the Referer."""
    page = token_page(request.args.get("k"))
    if page is None:
        return flask_reply(refusal(403, "missing or expired page token"))
    address = request.referrer or request.args.get("u", "")
    try:
        headers = record(request.environ, {"t": "page_view", "u": address, "ns": 1}, page)
    except Refused as refused:
        return flask_reply(refusal(refused.status, str(refused)))
    return PIXEL, 200, [("Content-Type", "image/gif"), ("Cache-Control", "no-store"), *headers]


def tags(page_request: Any) -> Markup:
    """The script tag (and its no-script pixel) placed at the end of every public page, but
    those whose address carries a secret: the script would send that address."""
    if private_paths.is_private(page_request.path):
        return Markup("")
    options = settings()
    token = page_token(page_request.script_root + page_request.path)
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

