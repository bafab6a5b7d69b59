"""One SMTP mail transaction for the bulk sender: `smtplib.SMTP.sendmail`'s dialogue, replies
and exceptions, with less work per message.

`sendmail` finds each line that starts with a dot with a regular expression over the whole
message and parses both addresses with `email.utils.parseaddr`, a few tens of microseconds a
message that a sender of a hundred thousand pays for nothing: the messages here are CRLF
bytes made by `engine.mail.compose` (and signed as they are), and the addresses plain. And
when the server offers PIPELINING (RFC 2920; Postfix, Exim and the large providers do), MAIL,
RCPT and DATA go in one write and their replies are read together: one round trip for them
instead of three. The message itself still waits for DATA's 354, as RFC 2920 asks.
"""
from __future__ import annotations

import re
import smtplib

_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9._%+=-]+@[A-Za-z0-9.-]+")
_DOT_AT_LINE_START = re.compile(rb"(?m)^\.")


def quoted(address: str) -> str:
    """`smtplib.quoteaddr`, without parsing a plain address (a test checks they agree)."""
    return f"<{address}>" if _PLAIN_ADDRESS.fullmatch(address) else smtplib.quoteaddr(address)


def dot_stuffed(data: bytes) -> bytes:
    """The message as DATA sends it: a line's leading dot doubled, ending in CRLF and the
    lone dot (what `smtplib.SMTP.data` sends)."""
    if b"\n." in data or data.startswith(b"."):
        data = _DOT_AT_LINE_START.sub(b"..", data)
    return data + (b".\r\n" if data.endswith(b"\r\n") else b"\r\n.\r\n")


def transaction(smtp: smtplib.SMTP, envelope_from: str, to: list[str], data: bytes
                ) -> dict[str, tuple[int, bytes]]:
    """`smtp.sendmail(envelope_from, to, data)` for bytes and ASCII addresses: the same
    exceptions on the same replies (`SMTPSenderRefused`, `SMTPRecipientsRefused`,
    `SMTPDataError`), the same reset or close after them; returns the refused recipients."""
    smtp.ehlo_or_helo_if_needed()
    size = f" size={len(data)}" if smtp.does_esmtp and smtp.has_extn("size") else ""
    commands = [f"mail FROM:{quoted(envelope_from)}{size}\r\n".encode("ascii")]
    commands += [f"rcpt TO:{quoted(address)}\r\n".encode("ascii") for address in to]
    pipelined = smtp.does_esmtp and smtp.has_extn("pipelining")
    if pipelined:
        smtp.send(b"".join(commands) + b"data\r\n")
    replies: list[tuple[int, bytes]] = []
    for command in commands + [b"data\r\n"] * pipelined:
        if not pipelined:
            smtp.send(command)
        replies.append(smtp.getreply())
        if replies[-1][0] == 421 or (not pipelined and replies[0][0] != 250):
            break  # a 421 closes the connection: no more replies come
    code, response = replies[0]
    if code != 250:
        _end_data(smtp, pipelined, replies)
        _reset_or_close(smtp, code)
        raise smtplib.SMTPSenderRefused(code, response, envelope_from)
    refused: dict[str, tuple[int, bytes]] = {}
    for address, (code, response) in zip(to, replies[1:], strict=False):
        if code not in (250, 251):
            refused[address] = (code, response)
        if code == 421:
            smtp.close()
            raise smtplib.SMTPRecipientsRefused(refused)
    if len(refused) == len(to):
        _end_data(smtp, pipelined, replies)
        smtp._rset()
        raise smtplib.SMTPRecipientsRefused(refused)
    if pipelined:
        code, response = replies[-1]
    else:
        smtp.send(b"data\r\n")
        code, response = smtp.getreply()
    if code != 354:
        raise smtplib.SMTPDataError(code, response)
    smtp.send(dot_stuffed(data))
    code, response = smtp.getreply()
    if code != 250:
        _reset_or_close(smtp, code)
        raise smtplib.SMTPDataError(code, response)
    return refused


def _end_data(smtp: smtplib.SMTP, pipelined: bool, replies: list[tuple[int, bytes]]) -> None:
    """A server that said 354 to a pipelined DATA although the transaction failed is owed an
    empty message, ended, before anything else is said (RFC 2920, 3.1)."""
    if pipelined and replies[-1][0] == 354:
        smtp.send(b".\r\n")
        smtp.getreply()


def _reset_or_close(smtp: smtplib.SMTP, code: int) -> None:
    if code == 421:
        smtp.close()
    else:
        smtp._rset()
