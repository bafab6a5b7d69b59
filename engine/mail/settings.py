"""Transport settings: the configuration's `MAIL_*` values, overridden by what an owner saved in
the admin (`MailSetting` rows, one per field that was changed there).

The sender (`MAIL_FROM`) has one place in the admin: the sender name and address of the site
settings (Admin → Site settings), each falling back to the configuration's (or to a From saved
on the Mail settings page before the site settings had one) when left empty.

A field never saved in the admin keeps following the configuration, so a deployment that sets
`MAGNET_MAIL_HOST` still controls the host until someone changes it on the page. The SMTP
password is stored encrypted with a key derived from `SECRET_KEY` (a database dump alone does
not give it away) and is never sent back to a browser.

`transport_config()` is read once per request or job (it is cached on `flask.g`).
"""
from __future__ import annotations

import base64
import hashlib
import logging
import re
from datetime import date, datetime
from email.utils import formataddr, parseaddr
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app, g
from sqlalchemy import select

from engine.content.models import SiteSetting
from engine.db import db
from engine.mail.models import MailSetting

log = logging.getLogger(__name__)

SECURITY = ("none", "starttls", "ssl")
FIELDS = ("host", "port", "security", "username", "password", "from", "rate_per_second",
          "rate_per_hour", "warmup", "warmup_start")
_WARMUP_STEP = re.compile(r"^\s*(?:day\s*)?(\d{1,4})\s*[:=]\s*(\d{1,9})\s*$", re.I)
_CACHE = "_magnet_mail_transport"
ENGINE_NAME = "Magnet"  # the display name of the default MAIL_FROM, which means nothing to readers


class SettingsError(ValueError):
    """A value that cannot be used, with the field it belongs to."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _fernet() -> Fernet:
    secret = current_app.config["SECRET_KEY"]
    secret = secret.encode() if isinstance(secret, str) else secret
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"magnet.mail.password" + secret)
                                           .digest()))


def encrypt(password: str) -> str:
    return _fernet().encrypt(password.encode()).decode() if password else ""


def decrypt(stored: Any) -> str:
    if not stored:
        return ""
    try:
        return _fernet().decrypt(str(stored).encode()).decode()
    except (InvalidToken, ValueError):
        log.error("the saved SMTP password cannot be decrypted (SECRET_KEY changed?): "
                  "enter it again under Mail settings")
        return ""


def parse_warmup(text: str) -> list[tuple[int, int]]:
    """A warm-up schedule, "1:500, 2:1000, 4:5000, 8:20000": from day 1 of sending at most 500
    messages a day, from day 2 at most 1,000, ... and no warm-up limit after the last step's
    day is over. Days rise, limits do not fall. "" is no warm-up. ("day1=500" also reads.)"""
    steps: list[tuple[int, int]] = []
    for part in re.split(r"[,;\n]+", text or ""):
        if not part.strip():
            continue
        match = _WARMUP_STEP.match(part)
        if not match:
            raise SettingsError("warmup", f"“{part.strip()[:40]}” is not a step: write "
                                "day:messages, like 1:500, 2:1000")
        day, limit = int(match[1]), int(match[2])
        if day < 1 or limit < 1:
            raise SettingsError("warmup", "days and message counts start at 1")
        if steps and day <= steps[-1][0]:
            raise SettingsError("warmup", f"day {day} comes after day {steps[-1][0]}: list "
                                "the days in rising order")
        if steps and limit < steps[-1][1]:
            raise SettingsError("warmup", f"day {day} allows fewer messages than the day "
                                "before: a warm-up only rises")
        steps.append((day, limit))
    return steps


def format_warmup(steps: list[tuple[int, int]]) -> str:
    return ", ".join(f"{day}:{limit}" for day, limit in steps)


def warmup_limit(config: dict[str, Any], today: date) -> int | None:
    """Messages allowed today under the warm-up schedule, or None (no limit today)."""
    steps, start = config["MAIL_WARMUP"], config["MAIL_WARMUP_START"]
    if not steps or start is None or today < start:
        return None if not steps else steps[0][1]
    day = (today - start).days + 1
    if day > steps[-1][0]:
        return None
    allowed = steps[0][1]
    for step_day, limit in steps:
        if day >= step_day:
            allowed = limit
    return allowed


def warmup_allowance(now: datetime) -> int:
    """Messages allowed on `now`'s day (UTC) under the warm-up schedule; 0 when none applies
    (what `ratelimit.Limiter.per_day` takes)."""
    return warmup_limit(transport_config(), now.date()) or 0


def _int(field: str, value: Any, low: int, high: int) -> int:
    try:
        number = int(str(value).strip() or 0) if not isinstance(value, bool) else -1
    except ValueError:
        raise SettingsError(field, "a whole number, please") from None
    if not low <= number <= high:
        raise SettingsError(field, f"a number from {low} to {high}")
    return number


def clean(field: str, value: Any) -> Any:
    """The value of one field as stored, or SettingsError."""
    if field == "host":
        host = str(value or "").strip().lower()
        if host and not re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?|\[[0-9a-f:.]+\]",
                                     host):
            raise SettingsError("host", "a host name like smtp.example.com (no scheme, no port)")
        return host
    if field == "port":
        return _int("port", value, 1, 65535)
    if field == "security":
        if value not in SECURITY:
            raise SettingsError("security", "none, STARTTLS or SSL")
        return value
    if field == "username":
        text = str(value or "").strip()
        if len(text) > 320 or any(c in text for c in "\r\n\0"):
            raise SettingsError("username", "at most 320 characters on one line")
        return text
    if field == "password":
        text = str(value or "")
        if len(text) > 1000 or any(c in text for c in "\r\n\0"):
            raise SettingsError("password", "at most 1,000 characters on one line")
        return text
    if field == "from":
        text = str(value or "").strip()
        name, address = parseaddr(text)
        if (not text or any(c in text for c in "\r\n\0") or "@" not in address
                or len(text) > 320):
            raise SettingsError("from", "an address like News <news@example.com>")
        return text
    if field == "rate_per_second":
        return _int(field, value, 0, 100_000)
    if field == "rate_per_hour":
        return _int(field, value, 0, 100_000_000)
    if field == "warmup":
        return format_warmup(parse_warmup(str(value or "")))
    if field == "warmup_start":
        text = str(value or "").strip()
        if not text:
            return ""
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise SettingsError("warmup_start", "a date, like 2026-12-01") from None
    raise KeyError(field)


def _flag(value: Any) -> bool:
    """A boolean setting, also when it came from the environment as text ("false" is false)."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def from_config(config: dict[str, Any]) -> dict[str, Any]:
    """The fields as the configuration sets them."""
    security = "ssl" if _flag(config.get("MAIL_USE_SSL")) else \
        "starttls" if _flag(config.get("MAIL_USE_TLS")) else "none"
    return {"host": str(config.get("MAIL_HOST") or ""), "port": int(config.get("MAIL_PORT") or 25),
            "security": security, "username": str(config.get("MAIL_USERNAME") or ""),
            "password": str(config.get("MAIL_PASSWORD") or ""),
            "from": str(config.get("MAIL_FROM") or ""),
            "rate_per_second": int(config.get("MAIL_RATE_PER_SECOND") or 0),
            "rate_per_hour": int(config.get("MAIL_RATE_PER_HOUR") or 0),
            "warmup": str(config.get("MAIL_WARMUP") or ""),
            "warmup_start": str(config.get("MAIL_WARMUP_START") or "")}


def saved() -> dict[str, Any]:
    """The fields saved in the admin (the password still encrypted)."""
    rows = db.session.scalars(select(MailSetting).where(MailSetting.key.in_(FIELDS)))
    return {row.key: row.value for row in rows}


def configured_sender(stored: dict[str, Any] | None = None) -> str:
    """The From the site's sender falls back to: one saved on the Mail settings page by an
    earlier version, else `MAIL_FROM` as configured."""
    stored = saved() if stored is None else stored
    return str(stored.get("from") or current_app.config.get("MAIL_FROM") or "")


def site_sender(fallback: str) -> str:
    """The From of every email the site sends: the site settings' sender name and address,
    each one `fallback`'s when not set there (a name-less or engine-named fallback gives the
    site's name, which is what readers know)."""
    rows = db.session.scalars(select(SiteSetting).where(
        SiteSetting.key.in_(("sender_name", "sender_email", "name"))))
    chosen = {row.key: " ".join(str(row.value or "").split()) for row in rows}
    if not (chosen.get("sender_name") or chosen.get("sender_email")):
        return fallback
    name, address = parseaddr(fallback)
    if not name or name == ENGINE_NAME:
        name = chosen.get("name") or str(current_app.config.get("SITE_NAME") or name)
    return formataddr((chosen.get("sender_name") or name, chosen.get("sender_email") or address),
                      charset="utf-8")


def effective() -> dict[str, Any]:
    """Every field: saved in the admin, else from the configuration (password in clear); the
    From is the site's sender (`site_sender`)."""
    values = from_config(current_app.config)
    stored = saved()
    for key, value in stored.items():
        values[key] = decrypt(value) if key == "password" else value
    values["from"] = site_sender(configured_sender(stored))
    return values


def transport_config() -> dict[str, Any]:
    """What `open_transport()` and the bulk sender use, in the configuration's names:
    MAIL_HOST (str, "" = write to instance/mail/), MAIL_PORT (int), MAIL_USE_TLS (bool,
    STARTTLS), MAIL_USE_SSL (bool, implicit TLS: `smtplib.SMTP_SSL`), MAIL_USERNAME,
    MAIL_PASSWORD (str), MAIL_FROM (str), MAIL_RATE_PER_SECOND, MAIL_RATE_PER_HOUR (int,
    0 = unlimited), MAIL_WARMUP (list of (day, limit), [] = none), MAIL_WARMUP_START (date or
    None; see `warmup_limit`). Cached for the request or job."""
    cached = g.get(_CACHE)
    if cached is not None:
        return cached
    values = effective()
    try:
        warmup = parse_warmup(values["warmup"])
    except SettingsError as exc:
        log.error("MAIL_WARMUP is ignored: %s", exc)
        warmup = []
    try:
        start = date.fromisoformat(values["warmup_start"]) if values["warmup_start"] else None
    except ValueError:
        start = None
    config = {"MAIL_HOST": values["host"], "MAIL_PORT": int(values["port"]),
              "MAIL_USE_TLS": values["security"] == "starttls",
              "MAIL_USE_SSL": values["security"] == "ssl",
              "MAIL_USERNAME": values["username"], "MAIL_PASSWORD": values["password"],
              "MAIL_FROM": values["from"],
              "MAIL_RATE_PER_SECOND": int(values["rate_per_second"] or 0),
              "MAIL_RATE_PER_HOUR": int(values["rate_per_hour"] or 0),
              "MAIL_WARMUP": warmup, "MAIL_WARMUP_START": start}
    setattr(g, _CACHE, config)
    return config


def save(changes: dict[str, Any]) -> None:
    """Store changed fields (already `clean`ed) inside the caller's `write()`."""
    for key, value in changes.items():
        stored = encrypt(value) if key == "password" else value
        row = db.session.get(MailSetting, key)
        if row is None:
            db.session.add(MailSetting(key=key, value=stored))
        else:
            row.value = stored
    g.pop(_CACHE, None)
