"""Delivering mail: SMTP with one connection per batch, or `.eml` files when no host is set."""
from __future__ import annotations

import secrets
import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Protocol

from flask import current_app

from engine.db import utcnow


class Transport(Protocol):
    def deliver(self, message: EmailMessage, envelope_from: str | None = None) -> None: ...

    def send_raw(self, envelope_from: str, to: str, data: bytes) -> None: ...


def build(row: Any) -> EmailMessage:
    """The MIME message of a logged row (a `MailMessage` or a row with its columns):
    multipart/alternative with text and HTML."""
    config = current_app.config
    message = EmailMessage()
    headers = dict(row.headers or {})
    message["From"] = headers.pop("From", None) or config["MAIL_FROM"]
    message["To"] = row.to
    message["Subject"] = row.subject
    message["Date"] = format_datetime(utcnow())  # "+0000": UTC, not "-0000" (zone unknown)
    message["Message-ID"] = row.message_id
    for name, value in headers.items():
        message[name] = value
    message.set_content(row.text or "")
    message.add_alternative(row.html, subtype="html")
    return message


class SMTPTransport:
    def __init__(self, connection: smtplib.SMTP) -> None:
        self.connection = connection

    def deliver(self, message: EmailMessage, envelope_from: str | None = None) -> None:
        self.connection.send_message(message, from_addr=envelope_from)

    def send_raw(self, envelope_from: str, to: str, data: bytes) -> None:
        """One ready message; `envelope_from` is its own return path (VERP), so a bounce
        names the send it is about."""
        self.connection.sendmail(envelope_from, [to], data)


class FolderTransport:
    """Development: each message is written to `instance/mail/` to open in a mail client."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def deliver(self, message: EmailMessage, envelope_from: str | None = None) -> None:
        name = message["Message-ID"].strip("<>").split("@")[0]
        (self.folder / f"{name}.eml").write_bytes(bytes(message))

    def send_raw(self, envelope_from: str, to: str, data: bytes) -> None:
        """As a mail server would file it: with the return path on top."""
        name = secrets.token_hex(8)
        (self.folder / f"{name}.eml").write_bytes(
            f"Return-Path: <{envelope_from}>\r\n".encode() + data)


@contextmanager
def open_transport() -> Iterator[Transport]:
    """One connection for a whole batch (reconnecting per message costs a TCP+TLS handshake)."""
    config: dict[str, Any] = current_app.config
    if not config.get("MAIL_HOST"):
        yield FolderTransport(Path(current_app.instance_path) / "mail")
        return
    connection = smtplib.SMTP(config["MAIL_HOST"], int(config["MAIL_PORT"]), timeout=30)
    try:
        if config.get("MAIL_USE_TLS"):
            connection.starttls(context=ssl.create_default_context())
        if config.get("MAIL_USERNAME"):
            connection.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"])
        yield SMTPTransport(connection)
    finally:
        try:
            connection.quit()
        except smtplib.SMTPException:
            connection.close()
