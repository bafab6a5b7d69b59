"""DKIM: the site's signing key in `instance/dkim/<selector>.private` and the signature every
message carries, so receivers can tie it to the sending domain (Gmail, Yahoo and Microsoft
require it of bulk senders).

The signature is dkimpy's construction (its relaxed canonicalisation, header folding,
header selection and `h=` hashing, done here only for the headers signed, without a regex per
line: the same bytes, a test compares them), but the RSA step is OpenSSL's through
`cryptography`: dkimpy signs in pure Python, about 9 ms per message with a 2048-bit key (its
`dkim.sign` also re-parses the PEM key each call), against about 0.3 ms for OpenSSL — the
difference between DKIM dominating a 100,000-recipient send and it being a small part of it.
Tests verify the result with `dkim.verify`.

Signed headers (`h=`): From (twice, so no second From can be added), To, Subject, Date,
Message-ID, MIME-Version, Content-Type, the RFC 8058 List-Unsubscribe and
List-Unsubscribe-Post (receivers honour one-click unsubscribe only when the signature covers
them), and List-Id, Reply-To, Cc, In-Reply-To, References, Feedback-ID when present.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim import RE_BTAG, fold, rfc822_parse
from flask import current_app

from engine.db import utcnow
from engine.mail.settings import transport_config

log = logging.getLogger(__name__)

SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")  # one DNS label
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
KEY_BITS = 2048
# Always in h= when present, in this order; From is listed twice ("oversigned").
SIGNED = (b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
          b"list-unsubscribe", b"list-unsubscribe-post", b"list-id", b"reply-to", b"cc",
          b"in-reply-to", b"references", b"feedback-id")
# dkimpy's relaxed body rules with precompiled patterns that touch only what changes (its
# `[\t ]+` -> " " rewrites every single space of a body: a third of the signing time).
_TRAILING_WSP = re.compile(rb"[\t ]+\r\n")
_RUN_WSP = re.compile(rb"\t[\t ]*| [\t ]+")
_RUN_WSP_HEADER = re.compile(rb"[\t ]+")
_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+")  # a header name as dkimpy's parser takes it
_PAD = padding.PKCS1v15()
_PREHASHED = Prehashed(hashes.SHA256())
_CACHE = "magnet.dkim"  # app.extensions: {path: (mtime_ns, key)}

Signer = Callable[[bytes], bytes]


class KeyExists(FileExistsError):
    """A key for that selector exists; replacing it breaks mail until DNS is updated."""


def check_selector(selector: str) -> str:
    selector = (selector or "").strip().lower()
    if not SELECTOR.match(selector):
        raise ValueError(f"not a valid selector: {selector!r} (letters, digits and hyphens, "
                         "like 'magnet1' or '2026-12')")
    return selector


def key_folder() -> Path:
    return Path(current_app.instance_path) / "dkim"


def key_path(selector: str) -> Path:
    return key_folder() / f"{check_selector(selector)}.private"


def selector() -> str:
    return str(current_app.config.get("MAIL_DKIM_SELECTOR") or "").strip().lower()


def signing_domain() -> str:
    """`MAIL_DKIM_DOMAIN`, else the domain of `MAIL_FROM` (DMARC wants them aligned)."""
    configured = str(current_app.config.get("MAIL_DKIM_DOMAIN") or "").strip().lower()
    return configured or parseaddr(transport_config()["MAIL_FROM"])[1].rpartition("@")[2].lower()


def generate(selector: str, force: bool = False) -> Path:
    """A new 2048-bit RSA key for `selector`, written owner-only (0600) as PKCS#1 PEM."""
    path = key_path(selector)
    if path.exists() and not force:
        raise KeyExists(f"{path} exists; use --force to replace it (mail signed with the old key "
                        "fails DKIM until the new DNS record is published)")
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.replace(temporary, path)
    return path


def load_key(path: Path) -> rsa.RSAPrivateKey:
    """The key at `path`, parsed once per file version (OpenSSL checks an RSA key on loading,
    which costs milliseconds: too much per batch)."""
    cache: dict[str, Any] = current_app.extensions.setdefault(_CACHE, {})
    mtime = path.stat().st_mtime_ns
    held = cache.get(str(path))
    if held and held[0] == mtime:
        return held[1]
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} is not an RSA key")
    cache[str(path)] = (mtime, key)
    return key


def public_key_base64(key: rsa.RSAPrivateKey) -> str:
    """The `p=` of the DNS record: the SubjectPublicKeyInfo, DER, base64."""
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def dns_record(selector: str, domain: str, key: rsa.RSAPrivateKey) -> tuple[str, str]:
    """(name, value) of the TXT record that publishes the key."""
    return f"{selector}._domainkey.{domain}", f"v=DKIM1; k=rsa; p={public_key_base64(key)}"


def dns_strings(value: str) -> list[str]:
    """The value cut into the 255-character strings a TXT record is made of."""
    return [value[i:i + 255] for i in range(0, len(value), 255)]


def canonical_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4 relaxed body canonicalisation; equal to dkimpy's `Relaxed` (tested)."""
    if b" \r\n" in body or b"\t\r\n" in body:  # a search is ten times cheaper than a sub
        body = _TRAILING_WSP.sub(b"\r\n", body)
    if b"  " in body or b"\t" in body:
        body = _RUN_WSP.sub(b" ", body)
    end = len(body)
    while body.endswith(b"\r\n", 0, end):
        end -= 2
    return body[:end] + b"\r\n" if end else b""


def parse(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """(headers, body) as dkimpy's `rfc822_parse` gives them, which splits the whole message
    into lines; a CRLF message (what `compose` and `message_bytes` make) only needs its header
    block split, here without a regex per line."""
    head, blank, body = message.partition(b"\r\n\r\n")
    if not blank or b"\n" in head.replace(b"\r\n", b"") or \
            body.count(b"\n") != body.count(b"\r\n"):
        return rfc822_parse(message)
    headers: list[list[bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and headers:
            headers[-1][1] += line + b"\r\n"
            continue
        name, colon, value = line.partition(b":")
        if not colon or not _NAME.fullmatch(name):
            return rfc822_parse(message)  # dkimpy's own rules and errors for the unusual
        headers.append([name, value + b"\r\n"])
    return headers, body


def _relaxed_value(value: bytes) -> bytes:
    """dkimpy's relaxed header value (unfold, WSP runs to one space, strip), skipping the
    substitution when nothing would change."""
    value = value.replace(b"\r\n", b"").replace(b"\n", b"")
    if b"  " in value or b"\t" in value:
        value = _RUN_WSP_HEADER.sub(b" ", value)
    return value.strip() + b"\r\n"


def _signed_headers(headers: list[list[bytes]], include: list[bytes]) -> list[bytes]:
    """The canonical `name:value\r\n` of each header in `include`, picked as dkimpy's
    `select_headers` picks them (a name listed twice takes the next instance up), only those
    canonicalised."""
    positions: dict[bytes, list[int]] = {}
    for index, (name, _) in enumerate(headers):
        positions.setdefault(name.lower(), []).append(index)
    lines = []
    for name in include:
        left = positions.get(name)
        if left:
            found = headers[left.pop()]
            lines.append(found[0].lower().rstrip() + b":" + _relaxed_value(found[1]))
    return lines


def make_signer(key: rsa.RSAPrivateKey, selector: str, domain: str) -> Signer:
    """A function from a whole message (bytes, CRLF) to its `DKIM-Signature: ...\\r\\n` header."""
    s, d = selector.encode(), domain.encode()

    def sign(message: bytes) -> bytes:
        headers, body = parse(message)
        present = {name.lower() for name, _ in headers}
        include = [name for name in SIGNED if name in present] + [b"from"]
        body_hash = base64.b64encode(hashlib.sha256(canonical_body(body)).digest())
        fields = [(b"v", b"1"), (b"a", b"rsa-sha256"), (b"c", b"relaxed/relaxed"), (b"d", d),
                  (b"s", s), (b"t", str(int(utcnow().timestamp())).encode()),
                  (b"h", b" : ".join(include)), (b"bh", body_hash),
                  (b"b", b"0" * 60)]  # a placeholder long enough to fold b= onto its own line
        value = fold(b"; ".join(b"=".join(f) for f in fields), namelen=14)
        # dkimpy's `hash_headers`: the signed headers, then this header without b='s value
        # and without its line end.
        hashed = _signed_headers(headers, include)
        hashed.append(b"dkim-signature:" + _relaxed_value(
            b" " + RE_BTAG.sub(b"\\1", value)).rstrip())
        signature = key.sign(hashlib.sha256(b"".join(hashed)).digest(), _PAD, _PREHASHED)
        fields[-1] = (b"b", base64.b64encode(signature))
        return b"DKIM-Signature: " + fold(b"; ".join(b"=".join(f) for f in fields) + b"\r\n",
                                          namelen=14)

    return sign


def load_signer() -> Signer | None:
    """The signer for this app's key, or None when no selector is configured. Called once per
    batch. A selector whose key file is missing is logged and mail goes out unsigned (and
    `magnet mail check` says so) rather than not at all."""
    name = selector()
    if not name:
        return None
    path = key_path(name)
    if not path.exists():
        log.error("MAIL_DKIM_SELECTOR is %r but %s does not exist: mail is sent unsigned "
                  "(run `magnet mail dkim-keygen --selector %s`)", name, path, name)
        return None
    return make_signer(load_key(path), name, signing_domain())


def message_bytes(message: EmailMessage) -> bytes:
    """The bytes an SMTP server receives for `message` (CRLF line ends, headers encoded)."""
    return message.as_bytes(policy=policy.SMTP)


def sign_message(message: EmailMessage, signer: Signer | None = None) -> bytes:
    """`message` as bytes, signed when a key is configured: send exactly these bytes
    (`smtplib.SMTP.sendmail(from, to, data)`), since any re-serialisation (as
    `send_message` does) may change what was signed."""
    data = message_bytes(message)
    signer = signer if signer is not None else load_signer()
    return signer(data) + data if signer else data
