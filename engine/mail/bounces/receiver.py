"""An optional SMTP receiver for the return paths (`magnet mail receive`), for a site whose
bounce domain's MX points here (or whose MTA relays `bounces+*@` to it).

It accepts a recipient only when it is one of our VERP addresses with a valid signature; any
other is refused with 550 at RCPT, so it is never an open relay nor a spam trap for strangers.
A message is parsed and recorded before the 250 is sent, so an accepted message is a stored
one; on an error the sender gets a 451 and tries again later.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.controller import Controller
from flask import Flask

from engine.mail.bounces.intake import process_message
from engine.mail.tokens import bounce_domain, read_bounce_address

log = logging.getLogger(__name__)
DATA_LIMIT = 10 * 1024 * 1024  # bytes; a bounce quoting a big original is still accepted
MAX_RECIPIENTS = 20


class BounceHandler:
    def __init__(self, app: Flask) -> None:
        self.app = app

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        with self.app.app_context():
            ours = read_bounce_address(address) is not None
        if not ours:
            return "550 5.1.1 No such recipient here"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._process, envelope.content,
                                       list(envelope.rcpt_tos))
        except Exception:
            log.exception("bounce receiver: a message could not be recorded")
            return "451 4.3.0 Try again later"
        return "250 Message accepted"

    def _process(self, raw: bytes, recipients: list[str]) -> None:
        with self.app.app_context():
            process_message(raw, source="smtp", recipients=recipients)


def controller(app: Flask, host: str = "127.0.0.1", port: int = 2525) -> Controller:
    """An aiosmtpd controller (not started) serving the return paths on host:port."""
    with app.app_context():
        name = bounce_domain()
    return Controller(BounceHandler(app), hostname=host, port=port,
                      data_size_limit=DATA_LIMIT, server_hostname=name)
