"""Browsers that have signed in to an account before ("device cookies", OWASP's answer to
lock-outs).

Counting failed sign-ins per account stops password guessing, but it also lets anyone lock the
real person out by failing on purpose. So a successful sign-in leaves a signed cookie naming the
account (by a hash of its address) and a random device id. Attempts from such a browser are
counted per device, not per account: a stranger's failures never lock out the browser the
owner always uses, while the stranger (without the cookie) still gets five tries per window.
"""
from __future__ import annotations

import hashlib
import secrets
from typing import Any

from flask import Request, Response

from engine.web import signing

COOKIE = "magnet_device"
MAX_AGE = 365 * 86400


def _account(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:20]


def recognised(request: Request, email: str) -> str | None:
    """This browser's device id when it signed in to `email`'s account before, else None."""
    raw = request.cookies.get(COOKIE, "")
    if not raw or len(raw) > 300:
        return None
    try:
        data: Any = signing.unsign("auth.device", raw, MAX_AGE)
    except signing.BadToken:
        return None
    if not isinstance(data, dict) or data.get("a") != _account(email):
        return None
    device = data.get("d")
    return device if isinstance(device, str) else None


def remember(response: Response, request: Request, email: str) -> None:
    """Mark this browser as one `email` signs in from (after a successful sign-in)."""
    device = recognised(request, email) or secrets.token_urlsafe(12)
    response.set_cookie(COOKIE, signing.sign("auth.device", {"a": _account(email), "d": device}),
                        max_age=MAX_AGE, httponly=True, samesite="Lax", secure=request.is_secure,
                        path="/auth")
