"""The bounce mailbox: `magnet mail bounces` reads the inbox the return paths are delivered
to, over IMAP or POP3, and records what each message reports.

`MAIL_BOUNCE_MAILBOX` names it as a URL, the password kept apart in `MAIL_BOUNCE_PASSWORD`
(never printed, never logged):
- `imaps://user@host:993/INBOX` (TLS), `imap://user@host:143/INBOX` (STARTTLS),
- `pop3s://user@host:995` (TLS), `pop3://user@host:110` (STLS).
A plain connection without TLS is only made to the local machine (a relay on loopback).
A message is removed (IMAP: flagged \\Seen and \\Deleted, then expunged; POP3: deleted) only
after what it reports was committed, so a crash leaves it to be read again - and reading it
again records nothing twice, since each report is stored under its own id.
"""
from __future__ import annotations

import imaplib
import logging
import poplib
import ssl
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from engine.mail.bounces.intake import process_message

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "::1", "localhost")
TIMEOUT = 30  # seconds per network operation
BATCH = 500  # messages read per run, so one run ends


class MailboxError(Exception):
    """The mailbox setting is wrong, or the server refused us (said without the password)."""


@dataclass(frozen=True)
class Mailbox:
    scheme: str  # imap, imaps, pop3, pop3s
    host: str
    port: int
    user: str
    folder: str = "INBOX"

    @property
    def secure(self) -> bool:
        return self.scheme.endswith("s")


def parse_url(url: str) -> Mailbox:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    defaults = {"imaps": 993, "imap": 143, "pop3s": 995, "pop3": 110}
    if scheme not in defaults or not parts.hostname or not parts.username:
        raise MailboxError("MAIL_BOUNCE_MAILBOX must look like imaps://user@host:993/INBOX or "
                           "pop3s://user@host:995")
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    return Mailbox(scheme, parts.hostname, parts.port or defaults[scheme],
                   unquote(parts.username), folder)


def poll(url: str, password: str, *, limit: int = BATCH,
         tls_context: ssl.SSLContext | None = None) -> Counter[str]:
    """Read, record and remove up to `limit` messages; counts by outcome."""
    box = parse_url(url)
    context = tls_context or ssl.create_default_context()
    counts: Counter[str] = Counter()
    reader = _imap if box.scheme.startswith("imap") else _pop3
    try:
        for raw, done in reader(box, password, context, limit):
            try:
                counts.update(process_message(raw, source=box.scheme.rstrip("s")))
            except Exception:  # one message we cannot handle stays; the others go on
                log.exception("bounce mailbox: a message could not be processed")
                counts["errors"] += 1
                continue
            done()  # only now: what it reported is committed
    except (OSError, imaplib.IMAP4.error, poplib.error_proto) as error:
        raise MailboxError(f"{box.scheme}://{box.host}:{box.port}: "
                           f"{type(error).__name__}: {_safe(error, password)}") from None
    return counts


def _safe(error: Exception, password: str) -> str:
    text = str(error)
    return text.replace(password, "***") if password else text


def _plain_allowed(box: Mailbox) -> None:
    if box.host not in LOOPBACK:
        raise MailboxError(f"{box.host}: the STARTTLS upgrade is required off this machine")


Message = tuple[bytes, Callable[[], None]]


@contextmanager
def _imap_session(box: Mailbox, password: str, context: ssl.SSLContext
                  ) -> Iterator[imaplib.IMAP4]:
    if box.scheme == "imaps":
        client: imaplib.IMAP4 = imaplib.IMAP4_SSL(box.host, box.port, ssl_context=context,
                                                  timeout=TIMEOUT)
    else:
        client = imaplib.IMAP4(box.host, box.port, timeout=TIMEOUT)
        if "STARTTLS" in client.capabilities:
            client.starttls(ssl_context=context)
        else:
            _plain_allowed(box)
    try:
        client.login(box.user, password)
        status, _ = client.select(_quoted(box.folder))
        if status != "OK":
            raise MailboxError(f"no folder {box.folder!r}")
        yield client
        client.expunge()
        client.close()
    finally:
        try:
            client.logout()
        except (OSError, imaplib.IMAP4.error):
            pass


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _imap(box: Mailbox, password: str, context: ssl.SSLContext, limit: int
          ) -> Iterator[Message]:
    with _imap_session(box, password, context) as client:
        status, data = client.uid("SEARCH", "UNDELETED")
        uids = (data[0] or b"").split()[:limit] if status == "OK" else []
        for uid in uids:
            status, fetched = client.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((item[1] for item in fetched or [] if isinstance(item, tuple)), None)
            if status != "OK" or raw is None:
                continue

            def done(uid: bytes = uid) -> None:
                client.uid("STORE", uid, "+FLAGS.SILENT", r"(\Seen \Deleted)")
            yield raw, done


def _pop3(box: Mailbox, password: str, context: ssl.SSLContext, limit: int
          ) -> Iterator[Message]:
    if box.scheme == "pop3s":
        client: poplib.POP3 = poplib.POP3_SSL(box.host, box.port, context=context,
                                              timeout=TIMEOUT)
    else:
        client = poplib.POP3(box.host, box.port, timeout=TIMEOUT)
        try:
            client.stls(context=context)
        except poplib.error_proto:
            _plain_allowed(box)
    try:
        client.user(box.user)
        client.pass_(password)
        count, _ = client.stat()
        for number in range(1, min(count, limit) + 1):
            _, lines, _ = client.retr(number)
            yield b"\r\n".join(lines) + b"\r\n", (lambda n=number: client.dele(n))
        client.quit()  # the deletions take effect only at QUIT
    finally:
        try:
            client.close()
        except OSError:
            pass
