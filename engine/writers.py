"""SQLite's writers, one at a time without long sleeps: turns on a file lock, checkpoints between.

SQLite lets one transaction write at a time, and a writer that finds the lock taken waits in
its busy handler by polling: it sleeps 1, 2, 5, 10… up to 100 ms between tries. Under steady
contention (web workers storing form submissions while a worker runs their follow-ups) writers
sleep long after the lock was freed, and the CPU idles while requests queue. So each write
transaction first takes its *turn*: an exclusive `flock` on `<database>.writers`, tried every
millisecond or less, so a freed turn is taken at once (and a writer stuck in its transaction
holds the others at most `TURN_TIMEOUT`). The turn is taken just before `BEGIN IMMEDIATE` and
given back as soon as the transaction has ended; `engine.db` does both.

Within one process the writers first wait on a lock of the process's own (a thread's, or under
gevent a greenlet's, woken the moment it is released), so only one of them at a time polls the
file lock: with every request of a busy gevent worker polling, the polls themselves took a
share of the CPU the writers waited for.

SQLite also copies the write-ahead log back into the database file (a checkpoint) inside the
commit that grows the log past 1,000 pages: tens of milliseconds, paid by whichever writer
crossed the line, while the others wait for their turn. Here a process checkpoints after
giving back its turn instead, in SQLite's PASSIVE mode (it never waits for nor blocks readers
and writers), every so many turns: 64 at first, then as many as make about `CHECKPOINT_PAGES`
pages of log between two checkpoints (each one reports the log's size), since a checkpoint
costs about as much for a few pages as for a thousand (tiny writes, such as an API event each,
checkpointed every 64 turns spent a tenth of their CPU on it). SQLite's own checkpoint stays as
a backstop, at ten times its usual size, for writers outside `engine.db.write()`.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from sqlalchemy.engine import Engine

try:
    import fcntl
except ImportError:  # not a POSIX system: writers wait in SQLite's busy handler alone
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("magnet.db")

TURN_TIMEOUT = 30  # seconds, as SQLite's busy timeout (engine.db)
CHECKPOINT_EVERY = 64  # turns of one process between its first two checkpoints
CHECKPOINT_PAGES = 1000  # the log's size to aim for at a checkpoint (SQLite's own default)
EVERY_BOUNDS = (16, 4096)  # the fewest and most turns between two checkpoints
BACKSTOP_PAGES = 10_000  # SQLite's own checkpoint, for writes that take no turn


class WriterQueue:
    """The writers of one SQLite database file."""

    def __init__(self, engine: Engine, database: str) -> None:
        self.engine = engine
        self.lock_path = f"{database}.writers"
        self.turns = 0
        self.every = CHECKPOINT_EVERY
        self._in_process: threading.Lock | None = None
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self._in_process = None  # a child has its own writers (and, under gevent, its own hub)

    def in_process(self) -> threading.Lock:
        """The lock this process's writers queue on before the file lock. Made on first use,
        so that under gevent it is made after the monkey-patching and is a greenlet's lock."""
        lock = self._in_process
        if lock is None:
            lock = self._in_process = threading.Lock()
        return lock

    @classmethod
    def of(cls, engine: Engine) -> WriterQueue | None:
        """The queue of a file database; None for in-memory ones (one connection: no queue)."""
        database = engine.url.database or ""
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return cls(engine, database)

    def after_turn(self) -> None:
        """Checkpoint now and then, after a turn (see the module docstring)."""
        self.turns += 1
        if self.turns < self.every:
            return
        self.turns = 0
        try:
            raw = self.engine.raw_connection()
            try:  # on the driver's connection, which runs it outside any transaction
                _busy, pages, _copied = raw.driver_connection.execute(
                    "PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            finally:
                raw.close()
        except Exception as exc:  # the next one will do; the backstop is there meanwhile
            log.warning("WAL checkpoint failed: %s", exc)
            return
        if pages < 0:  # it could not run (another process checkpointing): nothing learnt
            return
        low, high = EVERY_BOUNDS
        if pages < CHECKPOINT_PAGES // 2:
            self.every = min(self.every * 2, high)
        elif pages > CHECKPOINT_PAGES:
            self.every = max(self.every // 2, low)


class WriterTurn:
    """A `locking()` block's turn among the writers: taken when its transaction begins (so
    work done before any SQL holds nobody up), given back when that transaction ends."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self.queue: WriterQueue | None = None
        self.in_process: threading.Lock | None = None

    def take(self, queue: WriterQueue) -> None:
        """Wait for the turn: blocking on the lock when it is free or soon free, but never longer
        than `TURN_TIMEOUT`: a writer stuck inside its transaction (a forgotten shell session)
        must not hold the others forever. Past it, the writer goes on without a turn and
        SQLite's busy timeout decides, as it would without turns."""
        if self.fd is not None or fcntl is None:
            return
        deadline = time.monotonic() + TURN_TIMEOUT
        in_process = queue.in_process()
        held = in_process.acquire(timeout=TURN_TIMEOUT)
        try:
            fd = os.open(queue.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                taken = _lock_within(fd, max(0.0, deadline - time.monotonic()))
            except BaseException:
                os.close(fd)
                raise
        except BaseException:
            if held:
                in_process.release()
            raise
        if not taken:
            os.close(fd)
            if held:
                in_process.release()
            log.warning("a writer waited %d s for its turn; going on without one", TURN_TIMEOUT)
            return
        self.fd, self.queue, self.in_process = fd, queue, in_process if held else None

    def give_back(self) -> None:
        if self.fd is None:
            return
        fd, queue, in_process = self.fd, self.queue, self.in_process
        self.fd, self.queue, self.in_process = None, None, None
        try:
            os.close(fd)  # closing the file releases the lock
        finally:
            if in_process is not None:
                in_process.release()  # the process's next writer now finds the file lock free
        if queue is not None:
            queue.after_turn()


def _lock_within(fd: int, timeout: float) -> bool:
    """Take the exclusive lock on `fd` within `timeout` seconds. Blocking `flock` has no timeout,
    so the wait is a few blocking-free tries a millisecond apart: a turn freed is taken within
    about a millisecond, where SQLite's busy handler sleeps up to 100 ms between its tries."""
    deadline = time.monotonic() + timeout
    pause = 0.0002
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.001)


def configure_connection(dbapi_connection: Any) -> None:
    """The backstop checkpoint size, on each new connection."""
    dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
