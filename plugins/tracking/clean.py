"""Turning untrusted beacon input into a clean event, or a refusal that says why.

Everything a browser sends is hostile until checked: the type must be known, URLs must be
http(s), short and free of control characters (PostgreSQL cannot store a NUL, even inside
JSON), text is stripped of control characters and cut to size, query parameters that often carry
personal data are dropped, paths that carry a secret (`engine.web.private_paths`) keep only the
part before it, a time zone is kept only when the tz database knows its name, and the visitor
id never comes from the payload (only from the signed cookie).
What is stored is rebuilt from the parsed parts, never the raw input.

Each event gets its id here, at the edge: storing is idempotent on it (`ingest`), so an event
handed over twice (to Redis and to the database fallback, or drained again after a crash) is
stored once. The id is time-ordered, 48 bits of milliseconds then 80 random bits in hex, so
its index grows at one end and old ids can be pruned by comparing strings.
"""
from __future__ import annotations

import ipaddress
import random
import re
import time
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import user_agents

from engine.contacts import touches
from engine.db import id_prefix, ordered_id
from engine.web import private_paths
from engine.zones import zone_named

EVENT_TYPES = ("page_view", "click", "download", "form_view")
MAX_BODY = 4096
MAX_URL = 2000
MAX_PATH = 500  # as the Traffic page stores and shows it (decoded)
MAX_TITLE = 200
MAX_LABEL = 100
MAX_ZONE = 64  # the longest IANA name is 32 characters
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
# Query parameters that tend to carry personal data or secrets: never stored.
PRIVATE_PARAMS = re.compile(r"^(e?mail|email_?address|token|password|passwd|pass|secret|key|"
                            r"sig|signature|auth|session|sid|code|phone|name)$", re.I)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
DEFAULT_PORTS = {"http": 80, "https": 443}
LANGUAGE = re.compile(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,3}")
# Crawlers, headless browsers and HTTP libraries, checked before any parsing (cheap).
BOT_AGENTS = re.compile(r"bot\b|bot/|crawl|spider|slurp|headless|phantomjs|puppeteer|"
                        r"playwright|selenium|webdriver|lighthouse|python|curl/|wget|"
                        r"go-http|java/|httpclient|okhttp|scrapy|facebookexternalhit|"
                        r"preview|monitor|pingdom|uptime|axios|node-fetch", re.I)
class BadEvent(ValueError):
    """The input cannot become an event; the message is safe to send back."""


def event_id(timestamp: float) -> str:
    """A new event's id: an `ordered_id` of the hit's time. The id never leaves the server, so
    it needs to be unique, not unguessable: its random part comes from the process's own
    generator (`random`, seeded from the system and again in every forked process), without a
    system call on every hit."""
    return ordered_id(timestamp, random.getrandbits)


def ids_before(timestamp: float) -> str:
    """The smallest id an event at `timestamp` can have: every older event's id sorts below."""
    return id_prefix(timestamp)


def text(value: Any, limit: int) -> str:
    """A string without control characters, cut to `limit`; numbers become strings."""
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)):
        raise BadEvent("text fields must be strings")
    return CONTROL.sub("", str(value)).strip()[:limit]


def url(value: Any, *, required: bool = False, keep_query: bool = True) -> str:
    """A clean absolute http(s) URL without fragment, private parameters or a secret in its
    path; "" when absent."""
    if isinstance(value, str) and CONTROL.search(value):
        raise BadEvent("url contains control characters")
    raw = text(value, MAX_URL + 1)
    if not raw:
        if required:
            raise BadEvent("url is required")
        return ""
    return _rebuilt(raw, keep_query)


@lru_cache(maxsize=8192)
def _rebuilt(raw: str, keep_query: bool) -> str:
    """Cached: a site's visitors send the same few hundred page and referrer URLs over and over
    (a refusal is an exception, which is not cached). A URL the cache has not seen (one with an
    ad's click id, `?gclid=…`, is new on every visit) is first tried in the plain form most
    pages have, which one pattern checks, before it is parsed and rebuilt."""
    if len(raw) > MAX_URL:
        raise BadEvent("url is too long")
    plain = _plain(raw, keep_query)
    return plain if plain is not None else _parsed(raw, keep_query)


# A URL already in the form `_parsed` gives back: lower-case scheme and host, no user, no
# fragment, no escapes, no spaces, query pairs `name=value` of characters that need no quoting.
_PAIR = r"[A-Za-z0-9._~-]+=[A-Za-z0-9._~-]*"
_PLAIN = re.compile(rf"(https?)://([a-z0-9.-]+)(?::([0-9]{{1,5}}))?"
                    rf"(/[A-Za-z0-9._~!$&'()*+,;=:@/-]*)?(?:\?({_PAIR}(?:&{_PAIR})*))?")


def _plain(raw: str, keep_query: bool) -> str | None:
    """What `_parsed` makes of a URL in plain form (see `_PLAIN`), without parsing it; None
    for any other URL, which `_parsed` handles. A test holds the two to the same answers."""
    found = _PLAIN.fullmatch(raw)
    if found is None:
        return None
    scheme, host, port, path, query = found.groups()
    path = path or "/"
    if len(path) > MAX_PATH or (port is not None and int(port) > 65535):
        return None  # refused: `_parsed` says why
    kept = ""
    if keep_query and query:
        kept = "&".join(pair for pair in query.split("&")
                        if not PRIVATE_PARAMS.match(pair.partition("=")[0]))
    if private_paths.is_private(path):
        path, kept = private_paths.redact(path), ""
    address = netloc(scheme, host, None if port is None else int(port))
    return f"{scheme}://{address}{path}?{kept}" if kept else f"{scheme}://{address}{path}"


def _parsed(raw: str, keep_query: bool) -> str:
    """The URL parsed and rebuilt from its parts: any URL, or the reason it is refused."""
    try:
        parts = urlsplit(raw)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        raise BadEvent("malformed url") from None
    if parts.scheme not in ("http", "https") or not host or " " in raw:
        raise BadEvent("url must be an absolute http(s) address")
    path = parts.path or "/"
    decoded = unquote(path)
    if CONTROL.search(decoded):
        raise BadEvent("url contains control characters")
    if len(decoded) > MAX_PATH:
        raise BadEvent("url path is too long")
    query = ""
    if keep_query and parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(CONTROL.search(k) or CONTROL.search(v) for k, v in pairs):
            raise BadEvent("url contains control characters")  # campaign names come from here
        query = urlencode([(k, v) for k, v in pairs if not PRIVATE_PARAMS.match(k)])
    if private_paths.is_private(path):
        path, query = private_paths.redact(path), ""
    return urlunsplit((parts.scheme, netloc(parts.scheme, host, port), path, query, ""))


def netloc(scheme: str, host: str, port: int | None) -> str:
    """`host[:port]` as browsers write it: lower case, IPv6 in brackets, no default port."""
    host = host.lower()
    if ":" in host:
        host = f"[{host}]"
    return host if port is None or DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"


def site_host(address: str) -> str:
    """The `host[:port]` of a configured address (`https://www.example.com`), or of a bare
    host name, in the form `host_and_path` gives; "" when there is none."""
    address = address.strip()
    if not address:
        return ""
    parts = urlsplit(address if "://" in address else f"http://{address}")
    try:
        return netloc(parts.scheme, parts.hostname or "", parts.port) if parts.hostname else ""
    except ValueError:
        return ""


def host_and_path(clean_url: str) -> tuple[str, str]:
    """The host (with its port) and the path of a URL rebuilt by `url()`, which always has the
    shape `scheme://host/path?query`: split by hand, as storing does for thousands of events a
    second (`urlsplit` would be a quarter of the work)."""
    _, _, rest = clean_url.partition("://")
    host, _, path = rest.partition("/")
    return host, "/" + path.partition("?")[0]


def same_site(page_url: str, hosts: frozenset[str]) -> bool:
    """Events are about this site's pages; a page URL on another host is someone else's data."""
    return host_and_path(page_url)[0] in hosts


def utm(page_url: str) -> dict[str, str]:
    if "utm_" not in page_url:
        return {}
    query = dict(parse_qsl(urlsplit(page_url).query))
    return {key: query[key][:200] for key in UTM_KEYS if query.get(key)}


def language_tag(value: Any) -> str:
    """A BCP 47 tag such as `en-GB` (from the script, or the first of Accept-Language)."""
    tag = text(value, 35).split(",")[0].split(";")[0].strip() if value else ""
    return tag if LANGUAGE.fullmatch(tag) else ""


def time_zone(value: Any) -> str:
    """The browser's IANA zone (`Europe/Berlin`) when the tz database knows it; "" for
    anything else, which is dropped rather than refused: a browser with an odd zone is still
    a page view."""
    if not isinstance(value, str) or not value or len(value) > MAX_ZONE:
        return ""
    found = zone_named(value)
    return found.key if found is not None else ""


@lru_cache(maxsize=4096)
def is_bot_agent(agent: str) -> bool:
    """Cached: the pattern takes tens of microseconds, and visitors share a few hundred agents."""
    return not agent or bool(BOT_AGENTS.search(agent))


@lru_cache(maxsize=4096)
def truncate_ip(address: str, mode: str) -> str:
    """`truncate` keeps the network part only (as analytics tools do), `none` keeps nothing."""
    if mode == "none" or not address:
        return ""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return ""
    if mode == "full":
        return str(ip)
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


@lru_cache(maxsize=4096)
def device(agent: str) -> tuple[str, str, str, bool]:
    """(device class, browser, operating system, is a bot) from a user agent; cached because
    a site's visitors share a few hundred distinct agents and parsing one takes a millisecond."""
    parsed = user_agents.parse(agent or "")
    kind = ("bot" if parsed.is_bot else "tablet" if parsed.is_tablet
            else "mobile" if parsed.is_mobile else "desktop")
    major = parsed.browser.version[0] if parsed.browser.version else ""
    browser = f"{parsed.browser.family} {major}".strip()[:60]
    return kind, browser, parsed.os.family[:60], parsed.is_bot


def source_of(referrer: str, campaign: dict[str, str], host: str) -> tuple[str, str, str]:
    """(source, medium, campaign) of a visit, classified as the core's touches are."""
    return touches.source_of(referrer, campaign, host)


def event(payload: Any, *, hosts: frozenset[str], agent: str, ip: str, ip_mode: str,
          visitor_id: str, language: str = "") -> dict[str, Any]:
    """The compact, clean event queued for storage (keys kept short: it crosses Redis).
    `hosts` are the site's own (`host[:port]`): a page anywhere else is refused."""
    if not isinstance(payload, dict):
        raise BadEvent("the body must be a JSON object")
    kind = payload.get("t")
    if kind not in EVENT_TYPES:
        raise BadEvent(f"unknown event type; use one of {', '.join(EVENT_TYPES)}")
    page = url(payload.get("u"), required=True)
    if not same_site(page, hosts):
        raise BadEvent("url is not a page of this site")
    now = time.time()
    cleaned: dict[str, Any] = {
        "id": event_id(now), "t": kind, "u": page, "r": url(payload.get("r"), keep_query=False),
        "l": language_tag(payload.get("l")) or language_tag(language), "v": visitor_id,
        "a": text(agent, 400), "ip": truncate_ip(ip, ip_mode), "ts": round(now, 3)}
    if kind in ("click", "download"):
        cleaned["h"] = url(payload.get("h"), required=True)
        cleaned["x"] = text(payload.get("x"), MAX_LABEL)
    if kind == "page_view":
        cleaned["n"] = text(payload.get("n"), MAX_TITLE)
        zone = time_zone(payload.get("z"))
        if zone:
            cleaned["z"] = zone
    if kind == "form_view":
        cleaned["f"] = text(payload.get("f"), MAX_LABEL)
        if not cleaned["f"]:
            raise BadEvent("form_view needs the form's name (f)")
    if payload.get("ns"):
        cleaned["ns"] = 1
    return cleaned
