"""The visitor id: a random, signed, first-party cookie naming one browser.

It is what joins a visitor's anonymous activity to the contact they later become (identity
resolution): forms read it when a visitor identifies, tracking stamps it on every event. It is
signed so that nobody can claim another browser's history by guessing or copying an id shape.
The cookie is `<id>.<signature>` (itsdangerous's `Signer`, HMAC-SHA1 with a key derived from
the secret key): the tracking beacon reads or writes it on every hit, and a `Signer` costs a
tenth of a serializer.
"""
from __future__ import annotations

import re
import time
from functools import lru_cache
from typing import Any

from flask import current_app, request
from itsdangerous import BadSignature
from werkzeug.http import dump_cookie, http_date, parse_cookie

from engine.db import ordered_id
from engine.web import signing

COOKIE = "magnet_vid"
MAX_AGE = 2 * 365 * 86400
VISITOR_ID = re.compile(r"[0-9a-f]{32}")
_IN_HEADER = re.compile(rf"(?:^|;)[ \t]*{COOKIE}[ \t]*=[ \t]*([^;]*?)[ \t]*(?:;|$)")


class _Cookies:
    """The app's signer, and the cookies it has already checked: a returning visitor's browser
    sends the same cookie with every page view and click."""

    def __init__(self) -> None:
        self.signer = signing.signer("visitor")
        self.verified = lru_cache(maxsize=16384)(self._verify)

    def _verify(self, raw: str) -> str | None:
        try:
            value = self.signer.unsign(raw).decode("ascii")
        except (BadSignature, UnicodeDecodeError):
            return None
        return value if VISITOR_ID.fullmatch(value) else None


def _cookies() -> _Cookies:
    """One per app."""
    cookies = current_app.extensions.get("magnet.visitor_cookies")
    if cookies is None:
        cookies = _Cookies()
        current_app.extensions["magnet.visitor_cookies"] = cookies
    return cookies


def new_visitor_id() -> str:
    """A new browser's id: unguessable, and sorting by when it was made (`ordered_id`), so
    the tables keyed by it (visitors, their timeline and daily counts) grow at their ends."""
    return ordered_id()


def verified_id(raw: str | None) -> str | None:
    """The visitor id of a cookie value; None when absent or forged."""
    if not raw or len(raw) > 100:
        return None
    return _cookies().verified(raw)


def visitor_id(request: Any) -> str | None:
    """The verified visitor id of this request's cookie; None when absent or forged."""
    cookies = request.cookies  # `in` first: a missing key's `get` raises and catches inside
    return verified_id(cookies.get(COOKIE) if COOKIE in cookies else None)


def cookie_value(vid: str) -> str:
    return _cookies().signer.sign(vid).decode("ascii")


def cookie_header(vid: str, https: bool = False) -> str:
    """The `Set-Cookie` value naming this browser `vid`: `Secure` when the request came over
    HTTPS (or the site says so), since a trusted browser's cookie lets it act as its contact."""
    secure = https or bool(current_app.config.get("SESSION_COOKIE_SECURE", False))
    return dump_cookie(COOKIE, cookie_value(vid), max_age=MAX_AGE,
                       expires=_expires(int(time.time())), httponly=True, samesite="Lax",
                       secure=secure)


def cookie_in(header: str) -> str | None:
    """The visitor cookie's value in a `Cookie` header (the first, as browsers send the most
    specific first), read without parsing every cookie the site's pages set: the beacon reads
    it on every hit. A quoted value, which the engine never sets, is read as werkzeug reads it."""
    found = _IN_HEADER.search(header)
    if found is None:
        return None
    value = found.group(1)
    return parse_cookie(header).get(COOKIE) if value.startswith('"') else value


@lru_cache(maxsize=2)
def _expires(second: int) -> str:
    """The cookie's `Expires` for one made this second: formatting a date costs more than
    signing the cookie, and a busy beacon makes many new visitors' cookies a second."""
    return http_date(second + MAX_AGE)


def set_visitor_cookie(response: Any, vid: str) -> None:
    response.headers.add("Set-Cookie", cookie_header(vid, https=request.is_secure))
