"""The visitor id: a random, signed, first-party cookie naming one browser.

It is what joins a visitor's anonymous activity to the contact they later become (identity
resolution): forms read it when a visitor identifies, tracking stamps it on every event. It is
signed so that nobody can claim another browser's history by guessing or copying an id shape.
"""
from __future__ import annotations

import secrets
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

COOKIE = "magnet_vid"
MAX_AGE = 2 * 365 * 86400


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="magnet.visitor")


def new_visitor_id() -> str:
    return secrets.token_hex(16)


def visitor_id(request: Any) -> str | None:
    """The verified visitor id of this request's cookie; None when absent or forged."""
    raw = request.cookies.get(COOKIE)
    if not raw or len(raw) > 200:
        return None
    try:
        value = _serializer().loads(raw)
    except BadSignature:
        return None
    return value if isinstance(value, str) and len(value) == 32 else None


def set_visitor_cookie(response: Any, vid: str) -> None:
    response.set_cookie(COOKIE, _serializer().dumps(vid), max_age=MAX_AGE, httponly=True,
                        samesite="Lax", secure=current_app.config.get("SESSION_COOKIE_SECURE", False))
