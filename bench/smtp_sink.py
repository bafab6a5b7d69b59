"""An SMTP server that accepts and counts, for `bench/send.py`: aiosmtpd on a loopback port.

It does no more than a receiving server must (the SMTP dialogue, the data until the final dot)
and throws each message away, so what a send benchmark measures is the sender. Every second it
writes how many messages it has accepted to the file given, for the benchmark to read. With
`pipelining` it also offers PIPELINING (RFC 2920), as Postfix, Exim and the large providers
do (aiosmtpd reads pipelined commands but does not say so); `smtplib` never uses it.

    python -m bench.smtp_sink PORT COUNT_FILE [pipelining]
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class Counting:
    def __init__(self, pipelining: bool = False) -> None:
        self.accepted = 0
        self.pipelining = pipelining

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            return [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.accepted += len(envelope.rcpt_tos)
        return "250 OK"


def main() -> None:
    port, count_file = int(sys.argv[1]), Path(sys.argv[2])
    handler = Counting(pipelining=sys.argv[3:4] == ["pipelining"])
    controller = Controller(handler, hostname="127.0.0.1", port=port,
                            data_size_limit=10 * 1024 * 1024)
    controller.start()
    stop = threading.Event()
    try:
        while not stop.wait(1.0):
            count_file.write_text(str(handler.accepted))
    finally:
        controller.stop()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        time.sleep(0)
