"""Requests the site makes to addresses someone typed in (webhooks), without becoming a way into
the machine's own network (SSRF).

An owner's webhook URL is checked twice. `check_url()` (when it is saved, and again before each
request) wants HTTPS (plain HTTP only with `OUTBOUND_ALLOW_HTTP`), a host, no user name or
password, and neither `localhost` nor a literal address of this machine or a private network.
`post_json()` then resolves the host and refuses the request if ANY address it resolves to is
loopback, private, link-local (169.254.169.254: cloud metadata), multicast, reserved,
unspecified or otherwise not public, IPv4 addresses inside IPv6 ones included; and it connects
to the address it checked, not to the name: a second look-up, which a hostile DNS server could
answer with 127.0.0.1 (DNS rebinding), never happens. The request still carries the name (Host
header, TLS SNI) and the certificate is checked against the name. Redirects are not followed
(the target could be anything), and only the first `MAX_RESPONSE_BYTES` of an answer are read.

`OUTBOUND_ALLOW_PRIVATE` lets a site post to its intranet (a self-hosted CRM) and tests post to
loopback; it is off by default.
"""
from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

from flask import current_app

MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "Magnet-Webhook/1.0"
# Answers a receiver may recover from, so a webhook is tried again later: these and every 5xx.
RETRIED_STATUSES = frozenset({408, 425, 429})
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class OutboundRefused(ValueError):
    """The URL may not be requested; the message says why (fit to show an owner)."""


def _flag(name: str) -> bool:
    value = current_app.config.get(name, False)
    if isinstance(value, str):  # from the environment
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def worth_retrying(status: int) -> bool:
    """Whether a webhook that got this HTTP answer should be tried again later."""
    return status >= 500 or status in RETRIED_STATUSES


def check_url(url: str) -> str:
    """The URL, stripped, if the site may post to it; OutboundRefused otherwise. No DNS look-up
    here (addresses behind a name are checked when the request is made)."""
    url = (url or "").strip()
    if not url or len(url) > 2000 or any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise OutboundRefused("Enter a web address without spaces.")
    if not url.isascii():
        raise OutboundRefused("Write the address in ASCII (punycode for the host name, "
                              "percent-encoding for the path).")
    parts = urlsplit(url)
    allowed = ("https", "http") if _flag("OUTBOUND_ALLOW_HTTP") else ("https",)
    if parts.scheme.lower() not in allowed:
        raise OutboundRefused("The address must start with https://.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise OutboundRefused("The address may not contain a user name or password.")
    if not parts.hostname:
        raise OutboundRefused("The address needs a host name.")
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number from 0 to 65535)
    except ValueError:
        raise OutboundRefused("The address has an invalid port.") from None
    if not _flag("OUTBOUND_ALLOW_PRIVATE"):
        host = parts.hostname.rstrip(".").lower()
        literal = _literal(host)
        if (literal is not None and not is_public(literal)) or host == "localhost" \
                or host.endswith(".localhost"):
            raise OutboundRefused("Addresses on this machine or a private network are refused.")
    return url


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def is_public(address: IPAddress) -> bool:
    """Whether an address is on the public internet: not loopback, private, link-local,
    multicast, reserved or unspecified, looking inside IPv6 forms that carry an IPv4 address
    (mapped, 6to4, Teredo)."""
    inner: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        inner += [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
        if address.teredo is not None:
            inner += list(address.teredo)
    return all(not (a.is_loopback or a.is_private or a.is_link_local or a.is_multicast
                    or a.is_reserved or a.is_unspecified or _site_local(a)) and a.is_global
               for a in inner)


def _site_local(address: IPAddress) -> bool:
    """fec0::/10, deprecated but still routed inside some networks."""
    return isinstance(address, ipaddress.IPv6Address) and address.is_site_local


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, all of them allowed (OutboundRefused otherwise)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host}: {exc}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if not _flag("OUTBOUND_ALLOW_PRIVATE"):
        for address in addresses:
            parsed = _literal(address)
            if parsed is None or not is_public(parsed):
                raise OutboundRefused(f"{host} resolves to {address}, an address on this "
                                      "machine or a private network: refused.")
    if not addresses:
        raise OSError(f"{host} has no address")
    return addresses


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to a checked address, under the URL's host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address, self.reached = address, False

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.reached = True


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a checked address; SNI and the certificate check use the URL's host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address, self.reached = address, False

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.reached = True
        try:
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def post_json(url: str, payload: Any, timeout: float = 10) -> int:
    """POST `payload` as JSON; returns the HTTP status (a redirect is returned, not followed).
    OutboundRefused for a target that may not be requested; OSError (http.client's errors,
    timeouts, TLS failures) when it cannot be reached."""
    url = check_url(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme.lower() == "https"
    port = parts.port or (443 if secure else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "Accept": "*/*", "Connection": "close"}
    error: Exception | None = None
    for address in resolve(host, port):
        kind = _PinnedHTTPS if secure else _PinnedHTTP
        connection = kind(host, port, address, timeout)
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read(MAX_RESPONSE_BYTES)
            return response.status
        except ssl.SSLCertVerificationError:
            raise  # the name's certificate is wrong: another address of it will not help
        except (OSError, http.client.HTTPException) as exc:
            error = exc
            if connection.reached:
                break  # connected, then failed: the next address could get it twice
        finally:
            connection.close()
    if isinstance(error, http.client.HTTPException):
        raise OSError(f"bad answer from {host}: {error!r}") from error
    raise error or OSError(f"cannot reach {host}")
