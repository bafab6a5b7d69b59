"""Delivering mail: SMTP with one connection per batch, or `.eml` files when no host is set.

The connection's settings are `engine.mail.settings.transport_config()`: the configuration,
overridden by what an owner saved under Admin -> Mail settings."""
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
from engine.mail.refusals import NotDeliverable
from engine.mail.settings import transport_config
from engine.mail.smtp import transaction


class Transport(Protocol):
    def send_raw(self, envelope_from: str, to: list[str], data: bytes) -> None: ...


def build(row: Any) -> EmailMessage:
    """The MIME message of a logged row (a `MailMessage` or a row with its columns):
    multipart/alternative with text and HTML."""
    message = EmailMessage()
    headers = dict(row.headers or {})
    message["From"] = headers.pop("From", None) or transport_config()["MAIL_FROM"]
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

    def send_raw(self, envelope_from: str, to: list[str], data: bytes) -> None:
        """One ready message (signed: its bytes must go as they are); `envelope_from` is its
        own return path (VERP), so a bounce names the send it is about. An address that is not
        ASCII goes with SMTPUTF8 when the server offers it, else `NotDeliverable`."""
        if all(address.isascii() for address in [envelope_from, *to]):
            transaction(self.connection, envelope_from, to, data)
            return
        self.connection.ehlo_or_helo_if_needed()
        if not self.connection.has_extn("smtputf8"):
            raise NotDeliverable("the address is not ASCII and the server does not offer "
                                 "SMTPUTF8")
        self.connection.sendmail(envelope_from, to, data, mail_options=["SMTPUTF8"])


class FolderTransport:
    """Development: each message is written to `instance/mail/` to open in a mail client."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def send_raw(self, envelope_from: str, to: list[str], data: bytes) -> None:
        """As a mail server would file it: with the return path on top."""
        name = secrets.token_hex(8)
        (self.folder / f"{name}.eml").write_bytes(
            f"Return-Path: <{envelope_from}>\r\n".encode() + data)


@contextmanager
def open_transport() -> Iterator[Transport]:
    """One connection for a whole batch (reconnecting per message costs a TCP+TLS handshake)."""
    config: dict[str, Any] = transport_config()
    if not config.get("MAIL_HOST"):
        yield FolderTransport(Path(current_app.instance_path) / "mail")
        return
    if config.get("MAIL_USE_SSL"):
        connection: smtplib.SMTP = smtplib.SMTP_SSL(
            config["MAIL_HOST"], int(config["MAIL_PORT"]), timeout=30,
            context=ssl.create_default_context())
    else:
        connection = smtplib.SMTP(config["MAIL_HOST"], int(config["MAIL_PORT"]), timeout=30)
    try:
        if config.get("MAIL_USE_TLS") and not config.get("MAIL_USE_SSL"):
            connection.starttls(context=ssl.create_default_context())
        if config.get("MAIL_USERNAME"):
            connection.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"])
        yield SMTPTransport(connection)
    finally:
        try:
            connection.quit()
        except smtplib.SMTPException:
            connection.close()
