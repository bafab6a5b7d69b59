"""Group commit: the intake rows of one process's concurrent requests, in one transaction.

On SQLite one transaction writes at a time, across processes. Each API request committing its
own intake row alone paid the writer's turn, `BEGIN IMMEDIATE` and `COMMIT` (with its write to
the log of every page the row touched: the table, its two indexes, the sequence) for one row,
and a busy process queued its requests one behind the other on that turn: while the other web
process or the drain held it, every request of this one waited, and its CPU idled. Here the
request that finds no commit under way leads: it takes the turn, then inserts every row that
its process's requests have queued by then (its own and those that arrived while it waited),
commits once, and hands each request its row's id. A request that arrives while a commit is
under way queues its row and waits for the next one, led by the first of them.

Nothing is answered before its row is committed, so an answer still means the event is kept.
When a shared transaction fails, each of its requests writes its row again alone, so one
request's failure is never another's.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

RETRY_ALONE = object()  # the shared transaction failed: write this row in one of its own
_MAKING = threading.Lock()  # guards a process's first write (see `GroupCommit._fresh`)


class _Queued:
    __slots__ = ("values", "done", "result", "lead")

    def __init__(self, values: tuple[Any, ...]) -> None:
        self.values = values
        self.done = threading.Event()
        self.result: Any = None
        self.lead = False


class GroupCommit:
    """One per process and statement. `write(values)` returns what `insert` returned for the
    row (its id, or None), or raises what writing it alone raised.

    `transaction()` is a context manager that takes the writer's turn and yields the driver
    connection inside `BEGIN IMMEDIATE … COMMIT`; `insert(raw, values)` writes one row in it.
    """

    def __init__(self, transaction: Callable[[], Any],
                 insert: Callable[[Any, tuple[Any, ...]], Any]) -> None:
        self._transaction = transaction
        self._insert = insert
        self._made_in = -1  # the process whose lock and queue these are (none yet)
        self._lock = threading.Lock()
        self._queue: list[_Queued] = []
        self._leading = False

    def _fresh(self) -> None:
        """A lock and queue of this process's, made on its first write (after gevent's patching,
        in a gunicorn worker): a lock inherited from a parent process means nothing here."""
        with _MAKING:
            if self._made_in != os.getpid():
                self._lock, self._queue, self._leading = threading.Lock(), [], False
                self._made_in = os.getpid()

    def write(self, values: tuple[Any, ...]) -> Any:
        if self._made_in != os.getpid():
            self._fresh()
        mine = _Queued(values)
        with self._lock:
            self._queue.append(mine)
            mine.lead = not self._leading
            self._leading = True
        if not mine.lead:
            mine.done.wait()
        if mine.lead:  # the first request, or the first left queued when a commit ended
            self._commit_queued()
        if mine.result is RETRY_ALONE:
            with self._transaction() as raw:
                return self._insert(raw, values)
        if isinstance(mine.result, BaseException):
            raise mine.result
        return mine.result

    def _commit_queued(self) -> None:
        """Write every queued row in one transaction, answer each, then hand the lead to the
        first row queued meanwhile (or leave none)."""
        batch: list[_Queued] = []
        try:
            with self._transaction() as raw:
                with self._lock:  # what queued while the turn was awaited goes in too
                    batch, self._queue = self._queue, []
                results = [self._insert(raw, queued.values) for queued in batch]
        except BaseException as exc:
            if not batch:  # it failed before taking the queue (the turn, BEGIN)
                with self._lock:
                    batch, self._queue = self._queue, []
            for queued in batch:  # each alone, so that one row's fault is its own
                queued.result = exc if len(batch) == 1 else RETRY_ALONE
            if not isinstance(exc, Exception):  # the leader itself is stopped (GreenletExit)
                self._answer(batch)
                raise
        else:
            for queued, result in zip(batch, results, strict=True):
                queued.result = result
        self._answer(batch)

    def _answer(self, batch: list[_Queued]) -> None:
        self._hand_on()
        for queued in batch:
            if not queued.lead:
                queued.done.set()

    def _hand_on(self) -> None:
        with self._lock:
            if self._queue:
                self._queue[0].lead = True
                self._queue[0].done.set()
            else:
                self._leading = False
