"""The bulk sender's SMTP transaction against a real server (aiosmtpd), with and without
PIPELINING: what arrives is what `smtplib.sendmail` delivers, refusals raise the same
exceptions, and the connection goes on after them."""
from __future__ import annotations

import smtplib
from typing import Any

import pytest

from engine.mail import smtp as transaction_module
from engine.mail.smtp import quoted, transaction

MESSAGE = (b"From: a@example.com\r\nTo: b@example.org\r\nSubject: dots\r\n\r\n"
           b".starts with a dot\r\nmiddle\r\n..two dots\r\nno line end at the end")


class Recording:
    def __init__(self, pipelining: bool) -> None:
        self.pipelining = pipelining
        self.received: list[tuple[str, list[str], bytes]] = []
        self.refuse_sender = ""

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        return responses[:-1] + ["250-PIPELINING", responses[-1]] if self.pipelining \
            else responses

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        if address == self.refuse_sender:
            return "550 5.7.1 sender not allowed"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        if address.startswith("gone"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos),
                              envelope.original_content))
        return "250 Accepted"


@pytest.fixture(params=[True, False], ids=["pipelining", "lock-step"])
def server(request):
    from aiosmtpd.controller import Controller

    from tests.serve_support import free_port
    handler = Recording(pipelining=request.param)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    connection = smtplib.SMTP("127.0.0.1", port, timeout=10)
    try:
        yield handler, connection
    finally:
        connection.close()
        controller.stop()


def test_delivers_what_sendmail_delivers_in_fewer_writes(server, monkeypatch):
    handler, connection = server
    connection.sendmail("bounces+s1-ab@acme.example", ["b@example.org"], MESSAGE)
    writes: list[bytes] = []
    send = connection.send
    monkeypatch.setattr(connection, "send", lambda data: (writes.append(data), send(data)))
    assert transaction(connection, "bounces+s1-ab@acme.example", ["b@example.org"],
                       MESSAGE) == {}
    assert handler.received[0] == handler.received[1]
    assert handler.received[1][2].endswith(b"\r\nno line end at the end\r\n")
    assert connection.has_extn("pipelining") == handler.pipelining
    assert len(writes) == (2 if handler.pipelining else 4)  # MAIL+RCPT+DATA at once, or not


def test_refusals_raise_as_sendmail_does_and_the_connection_goes_on(server):
    handler, connection = server
    assert transaction(connection, "s@acme.example", ["gone1@example.org", "c@example.org"],
                       MESSAGE) == {"gone1@example.org": (550, b"5.1.1 no such user")}
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        transaction(connection, "s@acme.example", ["gone2@example.org"], MESSAGE)
    assert refused.value.recipients == {"gone2@example.org": (550, b"5.1.1 no such user")}
    handler.refuse_sender = "refused@acme.example"
    with pytest.raises(smtplib.SMTPSenderRefused) as sender:
        transaction(connection, "refused@acme.example", ["c@example.org"], MESSAGE)
    assert sender.value.smtp_code == 550
    transaction(connection, "s@acme.example", ["d@example.org"], MESSAGE)
    assert [(sender, to) for sender, to, _ in handler.received] == [
        ("s@acme.example", ["c@example.org"]), ("s@acme.example", ["d@example.org"])]


@pytest.mark.parametrize("address", [
    "a@example.com", "bounces+s12-0123456789abcdef@acme.example", "a..b@x.com", ".a@x.com",
    "Jane <jane@example.com>", "odd address@example.com", "", "x"])
def test_quoted_is_quoteaddr(address):
    assert quoted(address) == smtplib.quoteaddr(address)


def test_dot_stuffing_is_smtplibs():
    for data in (MESSAGE, b".", b"a\r\n", b"a\n.b\r\n.c", b""):
        expected = smtplib._quote_periods(data)
        expected += b"" if expected.endswith(b"\r\n") else b"\r\n"
        assert transaction_module.dot_stuffed(data) == expected + b".\r\n"
