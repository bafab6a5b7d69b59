"""Signed values: one service for every token the site hands out and checks back.

Links in emails (double opt-in, downloads, password resets, invitations), shareable draft
previews, theme previews, tracking page tokens, browsers remembered at sign-in: each is
`sign(purpose, value)` and `unsign(purpose, token, max_age)`. The purpose is part of the key
(a token made for one purpose never passes for another), and every failure is one exception,
`BadToken`, whose `reason` says which: "missing", "forged" or "expired".

Tokens are URL-safe, timed itsdangerous serializations keyed by `SECRET_KEY`, one serializer
per app and purpose, kept (they are built once, not on every request). `signer(purpose)` gives
the plain `Signer` of a purpose for the one value signed on every request (the visitor cookie),
where a serializer's JSON would cost more than the work it guards.
"""
from __future__ import annotations

from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, Signer, URLSafeTimedSerializer

MAX_TOKEN = 4000  # characters: no token of ours is longer


class BadToken(ValueError):
    """A token that is missing, forged (or for another purpose) or expired."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _kept(kind: str, purpose: str, make: Any) -> Any:
    kept = current_app.extensions.setdefault("magnet.signing", {})
    found = kept.get((kind, purpose))
    if found is None:
        found = kept[(kind, purpose)] = make(current_app.config["SECRET_KEY"],
                                             salt=f"magnet.{purpose}")
    return found


def sign(purpose: str, value: Any) -> str:
    """A token carrying `value` (anything JSON can hold), dated now."""
    return _kept("timed", purpose, URLSafeTimedSerializer).dumps(value)


def unsign(purpose: str, token: Any, max_age: float | None = None) -> Any:
    """The value of a token made by `sign(purpose, ...)` at most `max_age` seconds ago (any age
    when None), or BadToken."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN:
        raise BadToken("missing")
    try:
        return _kept("timed", purpose, URLSafeTimedSerializer).loads(token, max_age=max_age)
    except SignatureExpired:
        raise BadToken("expired") from None
    except BadSignature:
        raise BadToken("forged") from None


def signer(purpose: str) -> Signer:
    """The plain signer of a purpose (`value.signature`), for values checked on every hit."""
    return _kept("plain", purpose, Signer)
