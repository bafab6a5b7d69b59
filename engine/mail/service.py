"""Queueing mail: validated headers, inlined CSS, a plain-text part, one outbox row per batch."""
from __future__ import annotations

import html as html_lib
import re
import secrets
from email.utils import formataddr, getaddresses, make_msgid, parseaddr
from typing import Any

import css_inline
import nh3

from engine.db import db
from engine.jobs import outbox
from engine.mail.models import MailMessage
from engine.mail.settings import ENGINE_NAME, transport_config
from engine.mail.tokens import domain_of

BATCH = 200  # messages per `mail.send` job: one SMTP connection serves the whole batch
_inliner = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)


class HeaderInjection(ValueError):
    """A value bound for an email header contains a line break (header injection)."""


def _no_newlines(name: str, value: str) -> str:
    if "\r" in value or "\n" in value or "\0" in value:
        raise HeaderInjection(f"line break in the {name} header")
    return value


def check_address(to: str) -> str:
    """One or more addresses, each with an @; refuses header injection."""
    _no_newlines("To", to)
    pairs = getaddresses([to])
    if not pairs or any("@" not in addr for _, addr in pairs):
        raise ValueError(f"not an email address: {to!r}")
    return to


def html_to_text(html: str) -> str:
    """A readable plain-text part from HTML (for clients and filters that want one)."""
    html = re.sub(r"(?i)>\s+(?=<li[\s>])", ">", html)  # the source's line breaks between items
    html = re.sub(r"(?i)<li(\s[^>]*)?>", "\n- ", html)  # a list stays a list
    html = re.sub(r"(?i)<br\s*/?>|</(p|div|h[1-6]|ul|ol|tr)>", "\n", html)
    html = re.sub(r'(?is)<a\s[^>]*href="([^"]+)"[^>]*>(.*?)</a>', r"\2 (\1)", html)
    text = html_lib.unescape(nh3.clean(html, tags=set()))
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def _message(to: str, subject: str, html: str, text: str | None,
             headers: dict[str, str] | None, contact_id: int | None = None) -> MailMessage:
    check_address(to)
    _no_newlines("Subject", subject)
    for name, value in (headers or {}).items():
        _no_newlines(name, name)
        _no_newlines(name, str(value))
    inlined = _inliner.inline(html)
    return MailMessage(to=to, subject=subject[:400], html=inlined,
                       text=text if text is not None else html_to_text(html),
                       headers={k: str(v) for k, v in (headers or {}).items()}, status="queued",
                       message_id=new_message_id(), attempts=0, contact_id=contact_id)


def sender(display_name: str) -> str:
    """The From of mail sent in the site's name: `MAIL_FROM` as configured when it names a
    sender of its own; otherwise the site's name with `MAIL_FROM`'s address (the engine's
    default name, "Magnet", means nothing to the people who read it)."""
    configured = transport_config()["MAIL_FROM"]
    name, address = parseaddr(configured)
    if name and name != ENGINE_NAME:
        return configured
    return formataddr((display_name.replace("\r", " ").replace("\n", " ")[:200], address))


def new_message_id() -> str:
    """A Message-ID in the sender's domain, stored with the message when it is queued."""
    return make_msgid(idstring=secrets.token_hex(4),
                      domain=domain_of(transport_config()["MAIL_FROM"]))


def send(to: str, subject: str, html: str, text: str | None = None,
         headers: dict[str, str] | None = None, contact_id: int | None = None) -> MailMessage:
    """Queue one email (inside `engine.db.write()`); a worker sends it after the commit.
    `contact_id`: the contact it is to or about, so a GDPR export shows it and erasure
    removes it."""
    message = _message(to, subject, html, text, headers, contact_id)
    db.session.add(message)
    db.session.flush()
    outbox.add("mail.send", message_ids=[message.id])
    return message


def send_many(messages: list[dict[str, Any]]) -> list[MailMessage]:
    """Queue many emails (dicts of `send()`'s arguments); each batch is sent over one connection."""
    rows = [_message(m["to"], m["subject"], m["html"], m.get("text"), m.get("headers"),
                     m.get("contact_id")) for m in messages]
    db.session.add_all(rows)
    db.session.flush()
    for start in range(0, len(rows), BATCH):
        outbox.add("mail.send", message_ids=[r.id for r in rows[start:start + BATCH]])
    return rows
