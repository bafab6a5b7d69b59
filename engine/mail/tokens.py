"""What a sent email carries that comes back to the site, each signed so it cannot be forged:
the recipient's unsubscribe and preference links, the open pixel, click redirects and the VERP
return path a bounce is sent to.

Links are built from `SITE_URL` (never the request's Host) with fixed paths, not `url_for`,
because the bulk sender makes several per recipient and `url_for` outside a request costs more
than the signing. `engine/mail/views.py` serves exactly these paths.

- recipient token (`[contact_id, send_id]`, no expiry: an unsubscribe link in a year-old email
  must still work) - `/email/unsubscribe/<t>` and `/email/preferences/<t>`;
- open token (`<send_id>.<signature>`) - `/email/o/<t>.gif`;
- click token (`[send_id, url]`): the URL is inside the signature, so a click can only go
  where that email pointed (no open redirect) - `/email/c/<t>`;
- bounce address `bounces+s123-<hmac>@domain` (or `m123` for a message of the mail log): the
  local part stays under 64 characters and lower-case, which every MTA keeps intact.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import time
from email.utils import parseaddr
from functools import lru_cache
from typing import Any

from flask import current_app
from itsdangerous import BadSignature
from itsdangerous.encoding import base64_encode, int_to_bytes

from engine.mail.settings import transport_config
from engine.web.links import site_url
from engine.web.signing import BadToken, sign, signer, unsign

UNSUBSCRIBE_PATH = "/email/unsubscribe/"
PREFERENCES_PATH = "/email/preferences/"
OPEN_PATH = "/email/o/"
CLICK_PATH = "/email/c/"
_BOUNCE = re.compile(
    r"^(?P<prefix>[a-z0-9._-]+)\+(?P<kind>[sm])(?P<id>[0-9]{1,12})-(?P<mac>[0-9a-f]{16})$")


def recipient_token(contact_id: int, send_id: int | None = None) -> str:
    """`sign("mail.recipient", [contact_id, send_id or 0])`, the same token (a test compares
    them), made with a key derived once per app: the bulk sender makes one per message, and
    itsdangerous's serializer spends most of its time on per-call setup. The payload (two
    numbers) is never one that itsdangerous would compress."""
    payload = base64_encode(f"[{int(contact_id)},{int(send_id or 0)}]".encode())
    value = payload + b"." + base64_encode(int_to_bytes(int(time.time())))
    mac = _keys().recipient.copy()
    mac.update(value)
    return f"{value.decode()}.{base64_encode(mac.digest()).decode()}"


def read_recipient_token(token: Any) -> tuple[int, int | None]:
    """(contact_id, send_id or None) of a recipient token, or BadToken."""
    value = unsign("mail.recipient", token)
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise BadToken("forged")
    return value[0], value[1] or None


def unsubscribe_url(contact_id: int, send_id: int | None = None) -> str:
    return site_url() + UNSUBSCRIBE_PATH + recipient_token(contact_id, send_id)


def preferences_url(contact_id: int, send_id: int | None = None) -> str:
    return site_url() + PREFERENCES_PATH + recipient_token(contact_id, send_id)


def recipient_urls(contact_id: int, send_id: int | None = None) -> tuple[str, str]:
    """(unsubscribe, preferences) URLs of one recipient's copy, with one token for both."""
    base, token = site_url(), recipient_token(contact_id, send_id)
    return base + UNSUBSCRIBE_PATH + token, base + PREFERENCES_PATH + token


def open_url(send_id: int) -> str:
    return f"{site_url()}{OPEN_PATH}{signer('mail.open').sign(str(int(send_id))).decode()}.gif"


def read_open_token(token: str) -> int:
    try:
        return int(signer("mail.open").unsign(token.removesuffix(".gif")))
    except (BadSignature, ValueError, UnicodeError):
        raise BadToken("forged") from None


def click_url(send_id: int, url: str) -> str:
    return site_url() + CLICK_PATH + sign("mail.click", [int(send_id), url])


def read_click_token(token: Any) -> tuple[int, str]:
    """(send_id, url) of a click token, or BadToken."""
    value = unsign("mail.click", token)
    if (not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], int)
            or not isinstance(value[1], str)):
        raise BadToken("forged")
    return value[0], value[1]


class _Keys:
    """An app's HMACs, keyed once: `.copy()` of a keyed HMAC is cheaper than a new one."""

    def __init__(self, secret: str | bytes) -> None:
        secret = secret.encode() if isinstance(secret, str) else secret
        self.bounce = hmac.new(secret, digestmod=hashlib.sha256)
        # itsdangerous's "django-concat" derivation of `sign("mail.recipient", ...)`'s key
        self.recipient = hmac.new(
            hashlib.sha1(b"magnet.mail.recipient" + b"signer" + secret).digest(),
            digestmod=hashlib.sha1)


def _keys() -> _Keys:
    found = current_app.extensions.get("magnet.mail.tokens")
    if found is None:
        found = current_app.extensions["magnet.mail.tokens"] = _Keys(
            current_app.config["SECRET_KEY"])
    return found


def _mac(kind: str, number: int) -> str:
    mac = _keys().bounce.copy()
    mac.update(f"magnet.bounce.{kind}{number}".encode())
    return mac.hexdigest()[:16]


def send_message_id(send_id: int) -> str:
    """The Message-ID of a mailing's copy, made from its ledger row: the same on every attempt,
    so a copy sent again after a crash is recognisably the same message."""
    number = int(send_id)
    return f"<s{number}.{_mac('i', number)[:12]}@{domain_of(transport_config()['MAIL_FROM'])}>"


def bounce_domain() -> str:
    """`MAIL_BOUNCE_DOMAIN`, else the domain of `MAIL_FROM` (as the admin's settings say)."""
    configured = (current_app.config.get("MAIL_BOUNCE_DOMAIN") or "").strip()
    return configured or domain_of(transport_config()["MAIL_FROM"])


@lru_cache(maxsize=16)
def domain_of(address: str) -> str:
    """The domain of an address like `Site <hello@example.com>` (kept: the bulk sender asks
    for it several times per message)."""
    return parseaddr(address)[1].rpartition("@")[2] or "localhost"


def bounce_address(kind: str, number: int) -> str:
    """The envelope sender (Return-Path) of one message: `kind` "s" for a mailing's send, "m"
    for a message of the mail log."""
    prefix = current_app.config.get("MAIL_BOUNCE_LOCAL") or "bounces"
    return f"{prefix}+{kind}{int(number)}-{_mac(kind, int(number))}@{bounce_domain()}"


def read_bounce_address(address: str) -> tuple[str, int] | None:
    """("s" or "m", id) of a return path we made, or None (not ours, or forged)."""
    local = parseaddr(address)[1].rpartition("@")[0].lower()
    match = _BOUNCE.match(local)
    if match is None:
        return None
    kind, number = match["kind"], int(match["id"])
    if not hmac.compare_digest(match["mac"], _mac(kind, number)):
        return None
    return kind, number
