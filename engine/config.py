"""Configuration: engine defaults, then `instance/magnet.toml`, then the environment.

Each layer overrides the one before, so a laptop needs no configuration at all (SQLite and an
embedded Redis inside the instance folder) while a deployment sets `DATABASE_URL`, `REDIS_URL`
and `SECRET_KEY` in its environment, as twelve-factor hosts expect.
"""
from __future__ import annotations

import os
import secrets
import tomllib
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULTS: dict[str, Any] = {
    "SITE_NAME": "Magnet",
    # The public address: feeds and sitemaps use the request's host when it is empty, but links
    # in emails are only ever made from it (engine.web.links); `magnet serve` sets it.
    "SITE_URL": "",
    "TRUSTED_PROXIES": 0,  # reverse proxies in front whose X-Forwarded-For is believed
    "SQLALCHEMY_DATABASE_URI": None,  # filled from DATABASE_URL or instance/magnet.db
    "REDIS_URL": None,  # empty: an embedded Redis whose files live in the instance folder
    "SAFE_MODE": False,
    "PLUGINS_PATH": str(PROJECT_ROOT / "plugins"),
    "THEMES_PATH": str(PROJECT_ROOT / "themes"),
    "CONTENT_PATH": str(PROJECT_ROOT / "content"),
    "PLUGIN_STATE_REFRESH_SECONDS": 2.0,
    "OUTBOX_MAX_ATTEMPTS": 8,
    "OUTBOX_LEASE_SECONDS": 300,
    "MAX_CONTENT_LENGTH": 1 * 1024 * 1024,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "MAIL_HOST": "",  # empty: emails are written to instance/mail/ instead of sent
    "MAIL_PORT": 25,
    "MAIL_USERNAME": "",
    "MAIL_PASSWORD": "",
    "MAIL_USE_TLS": False,  # STARTTLS
    "MAIL_USE_SSL": False,  # implicit TLS (port 465)
    "MAIL_FROM": "Magnet <hello@localhost>",
    # Deliverability (docs/mail.md): DKIM key by selector in instance/dkim/, the bounce domain
    # of the VERP return paths (default: MAIL_FROM's domain), send rates and a warm-up.
    "MAIL_DKIM_SELECTOR": "",
    "MAIL_DKIM_DOMAIN": "",
    "MAIL_BOUNCE_DOMAIN": "",
    "MAIL_RATE_PER_SECOND": 0,  # 0: no limit
    "MAIL_RATE_PER_HOUR": 0,
    "MAIL_WARMUP": "",  # "1:500, 2:1000, 4:5000": messages a day from each day of the warm-up
    "MAIL_WARMUP_START": "",  # YYYY-MM-DD, day 1 of the warm-up
    "MAIL_SCANNER_SECONDS": 10,  # a click this soon after sending is a link scanner's
    # Requests to addresses an owner typed in (webhooks, engine.web.outbound): HTTPS to public
    # addresses only, unless these allow plain HTTP or a private network (an intranet CRM).
    "OUTBOUND_ALLOW_HTTP": False,
    "OUTBOUND_ALLOW_PRIVATE": False,
}

# Environment variables read as they are, beside every `MAGNET_<KEY>` variable.
PLAIN_ENV = {"DATABASE_URL": "SQLALCHEMY_DATABASE_URI", "REDIS_URL": "REDIS_URL",
             "SECRET_KEY": "SECRET_KEY"}


def default_instance_path() -> Path:
    """The instance folder: `MAGNET_INSTANCE_PATH`, else `instance/` beside the project."""
    return Path(os.environ.get("MAGNET_INSTANCE_PATH") or PROJECT_ROOT / "instance").resolve()


def _coerce(raw: str, like: Any) -> Any:
    """Read an environment string as the type of the default it replaces."""
    if isinstance(like, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(like, int):
        return int(raw)
    if isinstance(like, float):
        return float(raw)
    return raw


# SQLite connections kept open per process. A gevent worker serves many requests at once, and
# with SQLAlchemy's 5 each burst of more opened and closed connections (with their PRAGMAs) for
# every request beyond the fifth; an idle SQLite connection costs little.
SQLITE_POOL = 16


def _normalise_database_url(url: str) -> str:
    """Accept the `postgres://` and `postgresql://` forms hosts hand out; use psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _secret_key(instance: Path) -> str:
    """Read the instance's secret key, generating it on the first run (never a fixed default)."""
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def load(instance: Path, overrides: dict[str, Any] | None = None,
         environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Merge the layers into one dict for `app.config`."""
    environ = dict(os.environ if environ is None else environ)
    config = dict(DEFAULTS)
    toml_file = instance / "magnet.toml"
    if toml_file.exists():
        with toml_file.open("rb") as fh:
            config.update({k.upper(): v for k, v in tomllib.load(fh).items()})
    for name, key in PLAIN_ENV.items():
        if environ.get(name):
            config[key] = environ[name]
    for name, raw in environ.items():
        if name.startswith("MAGNET_") and name not in ("MAGNET_INSTANCE_PATH",):
            key = name[len("MAGNET_"):]
            config[key] = _coerce(raw, DEFAULTS.get(key, ""))
    config.update(overrides or {})

    if not config.get("SQLALCHEMY_DATABASE_URI"):
        config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance / 'magnet.db'}"
    config["SQLALCHEMY_DATABASE_URI"] = _normalise_database_url(config["SQLALCHEMY_DATABASE_URI"])
    uri = config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite:///") and ":memory:" not in uri and "mode=memory" not in uri:
        config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_size": SQLITE_POOL})
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = _secret_key(instance)
    return config
