"""Spam and forgery defences for public forms, built to work on cached pages.

Public pages are cached and shared between anonymous visitors, so a per-session CSRF token
(Flask-WTF's) cannot be used: every visitor would get the same cached session token, or none.
Instead each rendered form carries a *signed, time-limited token not tied to a session*:
`{form slug, fields shown, issued-at, nonce}` with an HMAC keyed by the app's secret. It
proves the form was handed out by this site recently and which fields it asked; it does not
identify the visitor. On cached pages the token is made for each response, not stored with the
page (`engine.web.late`), so its date is when this visitor got the page, and a token stores one
submission only (its nonce is spent). Cross-site forgery is then stopped by two more checks that
need no session:
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

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from flask import current_app

from engine.web import signing
from engine.web.late import late
from engine.web.late import register as register_late
from engine.web.ratelimit import limiter
from engine.web.signing import BadToken

HONEYPOT = "website"  # a plausible name bots like to fill
TOKEN_FIELD = "_token"


TokenError = BadToken  # what a form's token or a link's check raises: `.reason` says why


def sign(purpose: str, data: Any) -> str:
    """A token for the forms' own links (`confirm`, `thanks`, `asset`)."""
    return signing.sign(f"forms.{purpose}", data)


def unsign(purpose: str, token: str, max_age: int) -> Any:
    """The signed data, or TokenError (forged, tampered, or older than `max_age` seconds)."""
    return signing.unsign(f"forms.{purpose}", token, max_age)


def form_token(slug: str, shown: list[str]) -> str:
    """A fresh token for a form showing `shown`: dated now, usable once (its nonce).

    Made for every page served with a form, cached ones included, so it is a plain HMAC over
    `slug~fields~milliseconds~nonce` (a few microseconds) rather than a serializer's JSON,
    compression and key derivation (over a hundred)."""
    body = f"{slug}~{','.join(shown)}~{int(time.time() * 1000)}~{secrets.token_urlsafe(9)}"
    return f"{body}~{_token_mac(body)}"


def _token_mac(body: str) -> str:
    keyed = current_app.extensions.get("magnet.forms.token_mac")
    if keyed is None:
        key = hashlib.sha256(f"magnet.forms.token|{current_app.config['SECRET_KEY']}".encode())
        keyed = current_app.extensions["magnet.forms.token_mac"] = hmac.new(
            key.digest(), digestmod=hashlib.sha256)
    mac = keyed.copy()
    mac.update(body.encode())
    return base64.urlsafe_b64encode(mac.digest()[:16]).rstrip(b"=").decode()


def late_form_token(slug: str, shown: list[str]) -> str:
    """The token as placed in a page: made for each response even on a cached page, so its
    date is when this visitor got it (`engine.web.late`)."""
    return late("form-token", f"{slug},{'.'.join(shown)}")


def _token_for_marker(arg: str) -> str:
    slug, _, shown = arg.partition(",")
    return form_token(slug, shown.split(".") if shown else [])


def check_form_token(token: str, slug: str) -> tuple[list[str], float, str]:
    """The field names the form showed, the seconds since the token was handed out, and its
    nonce (to be spent with `spend_token` when the submission is stored)."""
    max_age = int(current_app.config["FORM_TOKEN_MAX_AGE"])
    if not token or len(token) > 2000 or not token.isascii():
        raise TokenError("missing")
    parts = token.split("~")
    if len(parts) != 5 or not hmac.compare_digest(_token_mac("~".join(parts[:4])), parts[4]):
        raise TokenError("forged")
    signed_slug, fields, millis, nonce, _ = parts
    if signed_slug != slug or not millis.isdigit():
        raise TokenError("forged")
    age = time.time() - int(millis) / 1000
    if age > max_age:
        raise TokenError("expired")
    return (fields.split(",") if fields else []), age, nonce


def spend_token(nonce: str) -> bool:
    """Mark a token used; False when it was used already. One token stores one submission: a
    page fetched once cannot be replayed for a list of addresses. Kept in Redis for the
    token's whole life, else (Redis away) in this process's memory."""
    return limiter().first_use(f"token:{nonce}", int(current_app.config["FORM_TOKEN_MAX_AGE"]))


def register_late_values(app: Any) -> None:
    register_late(app, "form-token", _token_for_marker)


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
