"""The bytes of one bulk message, built directly rather than through `email.message`.

`EmailMessage` is the right tool for one message; for a hundred thousand its policy machinery
(header objects, folding, MIME walking) costs several times more than the rest of a send. A
marketing message always has the same shape - a few headers and a multipart/alternative with a
plain-text and an HTML part - so it is written here as bytes: headers encoded with RFC 2047
when they are not ASCII, both parts in quoted-printable (binascii's C encoder, lines of at most
76 characters, as RFC 5322 wants), CRLF line ends as SMTP and DKIM expect. The result parses
with the standard library (the tests read every message back through `email.parser`).
"""
from __future__ import annotations

import binascii
import secrets
from dataclasses import dataclass, field
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr

from engine.db import utcnow
from engine.mail.service import HeaderInjection
from engine.mail.settings import transport_config


@dataclass(frozen=True)
class Envelope:
    to: str
    subject: str
    message_id: str
    sender: str = ""  # the From header; "" = MAIL_FROM as configured
    headers: dict[str, str] = field(default_factory=dict)


def _header_value(name: str, value: str) -> str:
    if "\r" in value or "\n" in value or "\0" in value:
        raise HeaderInjection(f"line break in the {name} header")
    if value.isascii() and len(value) < 900:
        return value
    return Header(value, "utf-8", header_name=name).encode(linesep="\r\n")


def named_sender(from_name: str) -> str:
    """`MAIL_FROM`'s address under another display name (a mailing's "from name")."""
    return formataddr((" ".join(from_name.split())[:200],
                       parseaddr(transport_config()["MAIL_FROM"])[1]), charset="utf-8")


def _folded_list(value: str) -> str:
    """`<a>, <b>` folded after each comma, so no line passes 998 characters."""
    return ",\r\n ".join(part.strip() for part in value.split(","))


def _qp(text: str) -> bytes:
    encoded = binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), istext=True)
    return encoded.replace(b"\n", b"\r\n")


def compose(envelope: Envelope, html: str, text: str) -> bytes:
    """The whole message, CRLF-terminated, ready for SMTP and DKIM."""
    boundary = "=_" + secrets.token_hex(12)
    lines = [
        f"From: {_header_value('From', envelope.sender or transport_config()['MAIL_FROM'])}",
        f"To: {_header_value('To', envelope.to)}",
        f"Subject: {_header_value('Subject', envelope.subject)}",
        f"Date: {format_datetime(utcnow())}",
        f"Message-ID: {envelope.message_id}",
        "MIME-Version: 1.0",
    ]
    for name, value in envelope.headers.items():
        checked = _header_value(name, value)
        lines.append(f"{name}: {_folded_list(checked) if name == 'List-Unsubscribe' else checked}")
    lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
    head = "\r\n".join(lines).encode("utf-8") + b"\r\n\r\n"
    part = (f"--{boundary}\r\nContent-Type: text/{{}}; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n")
    return b"".join((
        head,
        part.format("plain").encode(), _qp(text), b"\r\n",
        part.format("html").encode(), _qp(html), b"\r\n",
        f"--{boundary}--\r\n".encode(),
    ))
