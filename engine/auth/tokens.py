"""Signed, expiring, single-use links (password reset, invitation, first sign-in).

A token names the user and a fingerprint of the account's state (password hash, last sign-in,
session key). Using the link changes that state, so the same link then fails: single use without
storing tokens. The signature (itsdangerous, keyed by SECRET_KEY, salted by purpose) stops
forgery; the timestamp in it, expiry (`engine.web.signing`).
"""
from __future__ import annotations

import hashlib
from datetime import timedelta

from engine.auth.models import User
from engine.db import db
from engine.web import is_row_id, signing

LIFETIMES = {
    "reset": timedelta(hours=1),
    "invite": timedelta(days=7),
    "welcome": timedelta(days=3),
}


def _fingerprint(user: User) -> str:
    state = "|".join(map(str, (user.password_hash, user.last_login_at, user.session_key,
                               user.active, user.email)))
    return hashlib.sha256(state.encode()).hexdigest()[:20]


def make(user: User, purpose: str) -> str:
    return signing.sign(f"auth.{purpose}", {"u": user.id, "f": _fingerprint(user)})


def read(token: str, purpose: str) -> User | None:
    """The user a still-valid token names, or None (forged, expired or already used)."""
    if not token or len(token) > 500:
        return None
    try:
        data = signing.unsign(f"auth.{purpose}", token, LIFETIMES[purpose].total_seconds())
    except signing.BadToken:
        return None
    if not isinstance(data, dict) or not is_row_id(data.get("u")):
        return None
    user = db.session.get(User, data["u"])
    if user is None or not user.active or data.get("f") != _fingerprint(user):
        return None
    return user
