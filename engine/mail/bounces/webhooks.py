"""ESP webhooks: bounces, complaints and deliveries reported by Amazon SES (through SNS),
Mailgun, Postmark and SendGrid, each authenticated its own way before anything is read:
- SES/SNS: the message's RSA signature (SignatureVersion 1: SHA-1, 2: SHA-256) checked with
  the signing certificate, fetched only from `https://sns.<region>.amazonaws.com/...pem`
  (no other host, no redirects, a short timeout, cached), and only for the configured topic
  (`MAIL_SES_TOPIC_ARN`); a SubscriptionConfirmation is confirmed the same safe way;
- Mailgun: HMAC-SHA256 of timestamp + token with `MAIL_MAILGUN_SIGNING_KEY`; an old timestamp
  or a token seen before is refused (a replay);
- Postmark: HTTP Basic auth with `MAIL_POSTMARK_WEBHOOK_USER` / `_PASSWORD`;
- SendGrid: the Signed Event Webhook's ECDSA P-256 signature over timestamp + body with
  `MAIL_SENDGRID_PUBLIC_KEY`; an old timestamp is refused.
A provider that is not configured does not exist (404); a bad signature is a 403 and stores
nothing. Each notice is stored under the provider's id, so a webhook delivered twice counts
once. ESPs echo our headers differently: the recipient with the original Message-ID (or our
VERP return path, when the ESP keeps it as the envelope sender) finds the send; else the
address alone still finds the contact.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from flask import current_app

from engine.db import write
from engine.mail.bounces import find_send, record_bounce, record_delivery
from engine.mail.tokens import read_bounce_address

MAX_BODY = 1024 * 1024  # bytes of one POST
MAX_AGE = 15 * 60  # seconds a signed timestamp stays acceptable
FETCH_TIMEOUT = 5  # seconds, for the SNS certificate and subscription confirmation
FETCH_LIMIT = 64 * 1024  # bytes read from them
_SNS_HOST = re.compile(r"^sns\.[a-z]{2}(-[a-z]+)+-\d\.amazonaws\.com(\.cn)?$")


class WebhookRefused(Exception):
    """Answered with `status` and nothing stored."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Notice:
    kind: str  # hard, soft, complaint, delivered
    email: str
    external_id: str | None = None
    diagnostic: str = ""
    header_message_id: str = ""  # the Message-ID header of our message, when echoed
    return_path: str = ""  # the envelope sender, when echoed (our VERP address)


def configured(provider: str) -> bool:
    config = current_app.config
    return {
        "ses": bool(config.get("MAIL_SES_TOPIC_ARN")),
        "mailgun": bool(config.get("MAIL_MAILGUN_SIGNING_KEY")),
        "postmark": bool(config.get("MAIL_POSTMARK_WEBHOOK_USER")
                         and config.get("MAIL_POSTMARK_WEBHOOK_PASSWORD")),
        "sendgrid": bool(config.get("MAIL_SENDGRID_PUBLIC_KEY")),
    }.get(provider, False)


def handle(provider: str, headers: Mapping[str, str], body: bytes) -> int:
    """Authenticate and record one POST; returns how many notices were new. Raises
    `WebhookRefused` (404 unknown or unconfigured, 400 unreadable, 403 not authentic)."""
    if not configured(provider):
        raise WebhookRefused(404, "no such webhook")
    if len(body) > MAX_BODY:
        raise WebhookRefused(413, "too large")
    reader = {"ses": _ses, "mailgun": _mailgun, "postmark": _postmark,
              "sendgrid": _sendgrid}[provider]
    try:
        notices = list(reader(headers, body))
    except WebhookRefused:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
        raise WebhookRefused(400, f"unreadable notification: {type(error).__name__}") from None
    return _record(notices, provider)


def _record(notices: Iterable[Notice], source: str) -> int:
    new = 0
    with write():
        for notice in notices:
            if "@" not in notice.email:
                continue
            verp = read_bounce_address(notice.return_path) if notice.return_path else None
            send_id, message_id = find_send(notice.email, notice.header_message_id, verp)
            if notice.kind == "delivered":
                new += record_delivery(email=notice.email, source=source, send_id=send_id,
                                       message_id=message_id)
            else:
                new += record_bounce(email=notice.email, kind=notice.kind, source=source,
                                     diagnostic=notice.diagnostic[:1000], send_id=send_id,
                                     message_id=message_id, external_id=notice.external_id)
    return new


def _id(source: str, *parts: Any) -> str:
    key = "|".join(str(p) for p in parts)
    return f"{source}:{hashlib.sha256(key.encode()).hexdigest()[:40]}"


def _json(body: bytes) -> Any:
    return json.loads(body.decode("utf-8"))


def _fresh(timestamp: str) -> None:
    if abs(time.time() - float(timestamp)) > MAX_AGE:
        raise WebhookRefused(403, "stale timestamp")


# --- Amazon SES through SNS ---------------------------------------------------------------

def sns_url_allowed(url: str) -> bool:
    """Only Amazon's SNS endpoints, over https on the default port: nothing else is fetched."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (parts.scheme == "https" and port in (None, 443) and not parts.username
            and not parts.password and bool(_SNS_HOST.match(parts.hostname or "")))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an error, never followed


def _fetch(url: str) -> bytes:
    """GET an SNS URL (checked by the caller): no redirects, short timeout, small body."""
    opener = urllib.request.build_opener(_NoRedirect)
    with opener.open(urllib.request.Request(url, headers={"User-Agent": "Magnet"}),
                     timeout=FETCH_TIMEOUT) as response:
        return response.read(FETCH_LIMIT)


def _sns_get(url: str) -> bytes:
    if not sns_url_allowed(url):
        raise WebhookRefused(403, "not an Amazon SNS URL")
    try:
        return _fetch(url)
    except OSError:
        raise WebhookRefused(503, "Amazon SNS could not be reached") from None


def _certificate(url: str) -> x509.Certificate:
    cache: dict[str, x509.Certificate] = current_app.extensions.setdefault(
        "magnet.sns_certificates", {})
    if url not in cache:
        if not url.endswith(".pem"):
            raise WebhookRefused(403, "not a signing certificate")
        certificate = x509.load_pem_x509_certificate(_sns_get(url))
        if len(cache) > 20:
            cache.clear()
        cache[url] = certificate
    return cache[url]


_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                 "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                "TopicArn", "Type"),
}


def _verify_sns(envelope: dict[str, Any]) -> None:
    fields = _SIGNED_FIELDS.get(envelope.get("Type", ""))
    if fields is None:
        raise WebhookRefused(400, "unknown SNS message type")
    text = "".join(f"{name}\n{envelope[name]}\n" for name in fields
                   if name != "Subject" or envelope.get("Subject") is not None)
    algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(
        str(envelope.get("SignatureVersion")))
    if algorithm is None:
        raise WebhookRefused(403, "unknown SNS signature version")
    key = _certificate(str(envelope.get("SigningCertURL", ""))).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise WebhookRefused(403, "not an RSA certificate")
    try:
        key.verify(base64.b64decode(envelope["Signature"]), text.encode(),
                   padding.PKCS1v15(), algorithm)
    except (InvalidSignature, binascii.Error):
        raise WebhookRefused(403, "bad signature") from None


def _ses(headers: Mapping[str, str], body: bytes) -> Iterator[Notice]:
    envelope = _json(body)
    if not isinstance(envelope, dict):
        raise ValueError("not an object")
    if envelope.get("TopicArn") != current_app.config["MAIL_SES_TOPIC_ARN"]:
        raise WebhookRefused(403, "not the configured topic")
    _verify_sns(envelope)
    if envelope["Type"] == "SubscriptionConfirmation":
        _sns_get(envelope["SubscribeURL"])  # confirms the subscription
        return
    if envelope["Type"] != "Notification":
        return
    message = json.loads(envelope["Message"])
    kind = message.get("notificationType") or message.get("eventType") or ""
    mail = message.get("mail") or {}
    header_id = (mail.get("commonHeaders") or {}).get("messageId") or ""
    for header in mail.get("headers") or []:
        if str(header.get("name", "")).lower() == "message-id":
            header_id = header.get("value") or header_id
    common = {"header_message_id": str(header_id), "return_path": str(mail.get("source", ""))}
    if kind == "Bounce":
        bounce = message["bounce"]
        severity = "hard" if bounce.get("bounceType") == "Permanent" else "soft"
        for recipient in bounce.get("bouncedRecipients") or []:
            email = str(recipient["emailAddress"])
            diagnostic = str(recipient.get("diagnosticCode") or bounce.get("bounceSubType", ""))
            yield Notice(severity, email, _id("ses", bounce.get("feedbackId")
                                              or envelope["MessageId"], email),
                         diagnostic, **common)
    elif kind == "Complaint":
        complaint = message["complaint"]
        if complaint.get("complaintFeedbackType", "abuse") == "not-spam":
            return
        for recipient in complaint.get("complainedRecipients") or []:
            email = str(recipient["emailAddress"])
            yield Notice("complaint", email, _id("ses", complaint.get("feedbackId")
                                                 or envelope["MessageId"], email),
                         str(complaint.get("complaintFeedbackType", "")), **common)
    elif kind == "Delivery":
        for email in (message.get("delivery") or {}).get("recipients") or []:
            yield Notice("delivered", str(email), **common)


# --- Mailgun --------------------------------------------------------------------------------

def _mailgun(headers: Mapping[str, str], body: bytes) -> Iterator[Notice]:
    payload = _json(body)
    signature = payload["signature"]
    timestamp, token = str(signature["timestamp"]), str(signature["token"])
    key = str(current_app.config["MAIL_MAILGUN_SIGNING_KEY"]).encode()
    expected = hmac.new(key, (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(signature["signature"])):
        raise WebhookRefused(403, "bad signature")
    _fresh(timestamp)
    _claim_token(token)
    event = payload["event-data"]
    email = str(event.get("recipient", ""))
    headers_echoed = ((event.get("message") or {}).get("headers") or {})
    common = {"header_message_id": str(headers_echoed.get("message-id", "")),
              "return_path": str((event.get("envelope") or {}).get("sender", ""))}
    status = event.get("delivery-status") or {}
    diagnostic = " ".join(str(status.get(k) or "") for k in ("code", "message", "description"))
    name = event.get("event")
    external = _id("mailgun", event.get("id") or token, email)
    if name == "failed":
        kind = "hard" if event.get("severity") == "permanent" else "soft"
        yield Notice(kind, email, external, " ".join(diagnostic.split()), **common)
    elif name == "complained":
        yield Notice("complaint", email, external, "complained", **common)
    elif name == "delivered":
        yield Notice("delivered", email, **common)


def _claim_token(token: str) -> None:
    """A Mailgun token is used once: a replayed POST is refused (Redis remembers tokens for as
    long as their timestamp is accepted; without Redis, the notice ids still dedupe)."""
    import redis

    from engine.jobs.connection import connection
    try:
        fresh = connection().set(f"magnet:mailgun-token:{token[:100]}", 1, nx=True, ex=MAX_AGE * 2)
    except (redis.RedisError, OSError):
        return
    if not fresh:
        raise WebhookRefused(403, "token already used")


# --- Postmark -------------------------------------------------------------------------------

POSTMARK_KINDS = {"HardBounce": "hard", "BadEmailAddress": "hard", "SoftBounce": "soft",
                  "Transient": "soft", "DnsError": "soft", "SpamComplaint": "complaint"}


def _basic_auth_ok(header: str) -> bool:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    config = current_app.config
    return (hmac.compare_digest(user.encode(), str(config["MAIL_POSTMARK_WEBHOOK_USER"]).encode())
            & hmac.compare_digest(password.encode(),
                                  str(config["MAIL_POSTMARK_WEBHOOK_PASSWORD"]).encode()))


def _postmark(headers: Mapping[str, str], body: bytes) -> Iterator[Notice]:
    if not _basic_auth_ok(headers.get("Authorization", "")):
        raise WebhookRefused(403, "bad credentials")
    record = _json(body)
    kind = record.get("RecordType")
    if kind == "Delivery":
        yield Notice("delivered", str(record.get("Recipient", "")))
    elif kind in ("Bounce", "SpamComplaint"):
        severity = POSTMARK_KINDS.get(str(record.get("Type", "")))
        if severity is None:  # AutoResponder, Subscribe, OpenRelayTest...: not a bounce
            return
        email = str(record.get("Email", ""))
        diagnostic = str(record.get("Details") or record.get("Description") or "")
        yield Notice(severity, email, _id("postmark", record.get("ID"), email), diagnostic)


# --- SendGrid -------------------------------------------------------------------------------

def _sendgrid_key() -> ec.EllipticCurvePublicKey:
    text = str(current_app.config["MAIL_SENDGRID_PUBLIC_KEY"]).strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
    else:
        key = serialization.load_der_public_key(base64.b64decode(text))
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("MAIL_SENDGRID_PUBLIC_KEY is not an ECDSA key")
    return key


def _sendgrid(headers: Mapping[str, str], body: bytes) -> Iterator[Notice]:
    signature = headers.get("X-Twilio-Email-Event-Webhook-Signature", "")
    timestamp = headers.get("X-Twilio-Email-Event-Webhook-Timestamp", "")
    if not signature or not timestamp:
        raise WebhookRefused(403, "unsigned")
    try:
        _sendgrid_key().verify(base64.b64decode(signature), timestamp.encode() + body,
                               ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error):
        raise WebhookRefused(403, "bad signature") from None
    _fresh(timestamp)
    events = _json(body)
    if not isinstance(events, list):
        raise ValueError("not a list")
    for event in events:
        email = str(event.get("email", ""))
        name = event.get("event")
        common = {"header_message_id": str(event.get("smtp-id", ""))}
        external = _id("sendgrid", event.get("sg_event_id") or event.get("sg_message_id"), email)
        diagnostic = " ".join(str(event.get(k) or "") for k in ("status", "reason")).strip()
        if name == "bounce":
            kind = "soft" if event.get("type") == "blocked" else "hard"
            yield Notice(kind, email, external, diagnostic, **common)
        elif name == "dropped":
            reason = str(event.get("reason", ""))
            kind = {"Bounced Address": "hard", "Invalid": "hard",
                    "Spam Reporting Address": "complaint"}.get(reason)
            if kind:
                yield Notice(kind, email, external, diagnostic, **common)
        elif name == "spamreport":
            yield Notice("complaint", email, external, "spamreport", **common)
        elif name == "delivered":
            yield Notice("delivered", email, **common)
