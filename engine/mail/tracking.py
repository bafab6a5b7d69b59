"""Open and click tracking: the links of a mailing rewritten through signed click URLs, an open
pixel, one hidden honeypot link, and the rules that tell a person from a machine.

`track()` runs once per recipient in the bulk sender, so it is built for speed: precompiled
patterns, and click tokens made here with a key derived once per app instead of through
`engine.mail.tokens.click_url` (about 35 µs a link, mostly itsdangerous's per-call
serializer work). They are the same itsdangerous tokens (`payload.timestamp.signature`, compact
JSON, HMAC SHA-1 with the "magnet.mail.click" salt), so `tokens.read_click_token` reads them; a test
checks that.

UTM parameters (`Mailing.utm`) go on every http(s) link, as Mailchimp's "Google Analytics
link tracking" does, except a link that already carries a `utm_` parameter (the editor tagged
it by hand: it is left as written) and our own unsubscribe/preference links.

Machine or human. Each open and click is recorded as an event with a `machine` flag; only
human ones set `MailSend.opened_at` / `clicked_at` and count as engagement:
- Apple Mail Privacy Protection preloads every image through Apple's proxy when mail arrives,
  whether or not it is read; its requests carry the bare user agent `Mozilla/5.0` (as
  documented by ESPs that detect it, e.g. SendGrid's and Mailgun's notes on MPP, and Apple's
  own description: https://support.apple.com/en-us/102663 "remote content is downloaded
  privately in the background"). Flagged machine.
- Gmail's `GoogleImageProxy` (and Yahoo's proxy) fetch the image when the person opens the
  message, so those count as human opens (the address is Google's, the act is the reader's).
- Link scanners (Barracuda, Mimecast, Proofpoint, Microsoft Safe Links / BingPreview, ...)
  follow every link on arrival: known user agents, HEAD requests, an empty user agent, a click
  within `MAIL_SCANNER_SECONDS` (default 10) of sending, and any click on the hidden honeypot
  link (no person can see it) are machine.
"""
from __future__ import annotations

import binascii
import hashlib
import hmac
import html as html_lib
import re
import time
from json.encoder import encode_basestring_ascii  # what json.dumps uses: the same text
from typing import Any
from urllib.parse import urlencode

from flask import current_app
from itsdangerous.encoding import int_to_bytes

from engine.mail import tokens
from engine.web.links import site_url

HONEYPOT = "#magnet-hp"  # fragment of the hidden link's URL
_HREF = re.compile(r"""(<a\s[^>]*?(?<![\w-])href\s*=\s*)(?:"([^"]*)"|'([^']*)')""", re.I)
_BODY_END = re.compile(r"</body\s*>", re.I)
MPP_AGENT = "Mozilla/5.0"
SCANNER_AGENTS = re.compile(
    r"barracuda|mimecast|proofpoint|bingpreview|safelinks|"
    r"urldefense|fireeye|trellix|forcepoint|symantec|messagelabs|trend ?micro|sophos|"
    r"ironport|cisco|zscaler|palo ?alto|checkpoint|avanan|abnormal|libwww|python|curl|wget|"
    r"go-http-client|java/|okhttp|headless|phantomjs|bot\b|spider|crawler|scanner|preview",
    re.I)
HUMAN_PROXIES = re.compile(r"googleimageproxy|yahoomailproxy", re.I)
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> bytes:
    """itsdangerous's `base64_encode` (URL-safe, unpadded) without its per-call overhead."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


class _Keys:
    """The HMACs of an app's open and click tokens, keyed once (itsdangerous's
    "django-concat" derivation: sha1(salt + "signer" + secret))."""

    def __init__(self, secret: str | bytes) -> None:
        secret = secret.encode() if isinstance(secret, str) else secret
        self.click = hmac.new(hashlib.sha1(b"magnet.mail.click" + b"signer" + secret).digest(),
                              digestmod=hashlib.sha1)
        self.open = hmac.new(hashlib.sha1(b"magnet.mail.open" + b"signer" + secret).digest(),
                             digestmod=hashlib.sha1)
        self.utm: dict[tuple[Any, ...], str] = {}  # a mailing's UTM query, encoded once

    def utm_query(self, utm: dict[str, Any] | None) -> str:
        if not utm:
            return ""
        key = tuple(utm.items())
        found = self.utm.get(key)
        if found is None:
            if len(self.utm) > 200:
                self.utm.clear()
            found = self.utm[key] = urlencode({str(k): str(v) for k, v in utm.items()
                                               if str(k).startswith("utm_") and v})
        return found


def _keys() -> _Keys:
    found = current_app.extensions.get("magnet.mail.tracking")
    if found is None:
        found = current_app.extensions["magnet.mail.tracking"] = _Keys(
            current_app.config["SECRET_KEY"])
    return found


class Links:
    """What one send's links are made from: the site's base, the keys, the time, and the
    mailing's UTM query, worked out once per call of `track()`."""

    def __init__(self, send_id: int, utm: dict[str, Any] | None) -> None:
        self.base = site_url()
        self.keys = _keys()
        self.send_id = int(send_id)
        self.stamp = b"." + _b64(int_to_bytes(int(time.time())))
        self.utm = self.keys.utm_query(utm)
        self.click_base = html_lib.escape(self.base) + tokens.CLICK_PATH
        self.skip = tuple(self.base + path for path in (
            tokens.UNSUBSCRIBE_PATH, tokens.PREFERENCES_PATH, tokens.CLICK_PATH,
            tokens.OPEN_PATH))

    def click(self, url: str) -> str:
        """`tokens.click_url(send_id, url)`, the same token, made faster."""
        return self.base + tokens.CLICK_PATH + self._click_token(url)

    def _click_token(self, url: str) -> str:
        """Only URL-safe characters: fit for an attribute without escaping."""
        payload = _b64(f"[{self.send_id},{encode_basestring_ascii(url)}]".encode())
        value = payload + self.stamp
        mac = self.keys.click.copy()
        mac.update(value)
        return f"{value.decode()}.{_b64(mac.digest()).decode()}"

    def click_attribute(self, url: str) -> str:
        """`click(url)` escaped for an HTML attribute."""
        return self.click_base + self._click_token(url)

    def open(self) -> str:
        value = str(self.send_id).encode()
        mac = self.keys.open.copy()
        mac.update(value)
        return (f"{self.base}{tokens.OPEN_PATH}{value.decode()}."
                f"{_b64(mac.digest()).decode()}.gif")

    def with_utm(self, url: str) -> str:
        if not self.utm or "utm_" in url:
            return url
        url, hashmark, fragment = url.partition("#")
        joint = "" if url.endswith(("?", "&")) else "&" if "?" in url else "?"
        return f"{url}{joint}{self.utm}{hashmark}{fragment}"


def honeypot_url() -> str:
    return site_url() + "/" + HONEYPOT


def track(html: str, *, send_id: int, mailing: Any) -> str:
    """The HTML of one recipient's email with its links wrapped (when `mailing.track_clicks`),
    UTM parameters added (when `mailing.utm`), a hidden honeypot link and the open pixel (when
    `mailing.track_opens`) before `</body>`."""
    clicks, opens = bool(mailing.track_clicks), bool(mailing.track_opens)
    links = Links(send_id, mailing.utm)
    if not (clicks or opens or links.utm):
        return html

    def rewrite(match: re.Match[str]) -> str:
        raw = match[2] if match[2] is not None else match[3]
        url = html_lib.unescape(raw).strip() if "&" in raw else raw.strip()
        if not url[:8].lower().startswith(("http://", "https://")) or url.startswith(links.skip):
            return match[0]
        url = links.with_utm(url)
        return f'{match[1]}"{links.click_attribute(url) if clicks else html_lib.escape(url)}"'

    html = _HREF.sub(rewrite, html)
    extra = ""
    if clicks:
        honeypot = links.click_attribute(links.base + "/" + HONEYPOT)
        extra += (f'<a href="{honeypot}" style="display:none;'
                  'font-size:0;max-height:0;overflow:hidden" aria-hidden="true" tabindex="-1">'
                  '</a>')
    if opens:
        extra += (f'<img src="{links.open()}" width="1" height="1" alt="" '
                  'style="display:block;border:0;width:1px;height:1px">')
    if not extra:
        return html
    end = html.rfind("</body")
    if end < 0:  # upper case or odd spacing: the slower search
        found = list(_BODY_END.finditer(html))
        end = found[-1].start() if found else len(html)
    return html[:end] + extra + html[end:]


def machine_open(user_agent: str, method: str = "GET") -> bool:
    """An image fetch no person caused: Apple's privacy proxy, a scanner, a HEAD request."""
    agent = (user_agent or "").strip()
    if method == "HEAD" or not agent or agent == MPP_AGENT:
        return True
    if HUMAN_PROXIES.search(agent):
        return False
    return bool(SCANNER_AGENTS.search(agent))


def machine_click(user_agent: str, *, method: str = "GET", url: str = "",
                  seconds_since_sent: float | None = None) -> bool:
    """A click no person made: the honeypot, a scanner's agent, a HEAD request, or too soon
    after sending for anyone to have read the email."""
    agent = (user_agent or "").strip()
    if method == "HEAD" or not agent or url.endswith(HONEYPOT):
        return True
    if seconds_since_sent is not None and seconds_since_sent < float(
            current_app.config.get("MAIL_SCANNER_SECONDS", 10) or 0):
        return True
    return bool(SCANNER_AGENTS.search(agent))
