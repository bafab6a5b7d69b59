"""The database: one Flask-SQLAlchemy extension, UTC datetimes, and SQLite tuned for many writers.

SQLite is the zero-configuration default, and several processes (web workers, RQ workers, the
CLI) write to it at once. Three settings keep "database is locked" away from users:
WAL (readers never block the writer), a generous busy timeout (a writer waits for the lock
instead of failing), and write transactions that take the lock up front with
`BEGIN IMMEDIATE`. Without the last one, a transaction that read first and writes later can
fail at once when another process committed in between, whatever the busy timeout says.
So every write goes through `write()`; plain reads stay deferred and never queue behind writers.
Before its `BEGIN IMMEDIATE`, a write also waits for its turn among the writers on an OS file
lock, which wakes it the moment the previous writer is done, where SQLite's busy handler would
poll with sleeps (`engine.writers`); the busy timeout stays for writers outside `write()`.
On PostgreSQL the same code runs ordinary transactions.
"""
from __future__ import annotations

import contextvars
import secrets
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeDecorator

from engine.writers import WriterQueue, WriterTurn, configure_connection

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})

# Each SQLite engine's writers (None for an in-memory database), for `driver_write`.
_WRITERS: weakref.WeakKeyDictionary[Engine, WriterQueue | None] = weakref.WeakKeyDictionary()
# Inside `locking()`: the block's WriterTurn (transactions begin with BEGIN IMMEDIATE); else False.
_immediate: contextvars.ContextVar[WriterTurn | bool] = contextvars.ContextVar(
    "magnet_begin_immediate", default=False)
# The largest id an INTEGER primary key holds on PostgreSQL, which refuses (an error, not "no
# row") to compare such a column with a larger number: ids from outside are checked against it.
MAX_ROW_ID = 2**31 - 1
# `session.info` key set while a `write()` runs on that session: a `write()` within it joins
# it. The session's own state will not do: it reports no transaction until the outer block
# runs its first statement.
WRITING = "magnet_writing"
# Statements that write, refused on SQLite outside `write()` / `locking()` (see `configure_sqlite`).
WRITE_VERBS = frozenset({"INSERT", "UPDATE", "DELETE", "REPLAC"})


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (the only kind of datetime Magnet stores).
    Everything that depends on time asks here, so tests move time with `clock` rather than
    sleeping (`engine.testing`'s `clock` fixture)."""
    return clock.now()


def id_prefix(timestamp: float) -> str:
    """The first 12 hex digits of `ordered_id`s made at `timestamp` (its milliseconds): every
    id made earlier sorts below it."""
    return f"{int(timestamp * 1000) & 0xFFFFFFFFFFFF:012x}"


def ordered_id(timestamp: float | None = None,
               randbits: Callable[[int], int] = secrets.randbits) -> str:
    """A new key of 32 hex digits that sorts by the time it was made (`timestamp`, now by
    default): 12 digits of milliseconds, then 80 random bits (by default from the system's
    generator), the layout of a UUIDv7.

    Why not 32 random digits: rows keyed by random ids land all over their indexes, so a
    batch of thousands (a tracking drain's new visitors and visits) changes a page per row,
    and every changed page is written to SQLite's log at the commit, then copied back by the
    checkpoint. The cost grew with the tables: in one worker, storing and delivering a page
    view took 0.069 ms in a fresh database and 0.084 ms once 150,000 were stored, against 0.066
    and 0.070 ms with keys that sort by time, whose new rows land at the indexes' ends
    (`docs/benchmarks.md`)."""
    at = time.time() if timestamp is None else timestamp
    return f"{id_prefix(at)}{randbits(80):020x}"


class Clock:
    """The engine's clock: the system's, shifted by `offset` (only tests shift it)."""

    offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


clock = Clock()


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use engine.db.utcnow() or an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def bind_processor(self, dialect: Any) -> Callable[[Any], Any] | None:
        """On SQLite, `process_bind_param` then the text, in one function: the busiest writers
        bind thousands of times a batch (every event's time, every visitor's last visit), and
        SQLAlchemy's wrapper around the type and its own formatting cost a tenth of storing a
        batch of page views (2.4 µs a time against 1.5 µs here). Same text:
        `YYYY-MM-DD HH:MM:SS.ffffff`, in UTC."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            naive = self.process_bind_param(value, dialect)
            return None if naive is None else naive.isoformat(" ", "microseconds")
        return process

    def result_processor(self, dialect: Any, coltype: Any) -> Callable[[Any], Any] | None:
        """On SQLite, reading the text and `process_result_value` in one function (as
        binding)."""
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def process(value: str | None) -> datetime | None:
            return None if value is None else self.process_result_value(
                datetime.fromisoformat(value), dialect)
        return process


def configure_sqlite(engine: Engine) -> None:
    """WAL, busy timeout, foreign keys, and `BEGIN IMMEDIATE` after the writer's turn inside
    `write()`; a statement that writes anywhere else is refused (`ChangedOutsideWrite`), since
    a deferred transaction that starts writing late is the one SQLite fails with "database is
    locked" whatever the busy timeout says."""
    queue = _WRITERS[engine] = WriterQueue.of(engine)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        configure_connection(dbapi_connection)

    @event.listens_for(engine, "before_cursor_execute")
    def _writes_only_inside_write(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not _immediate.get() and statement.lstrip()[:6].upper() in WRITE_VERBS:
            raise ChangedOutsideWrite(
                f"{statement.split(None, 1)[0]} outside engine.db.write(): on SQLite it would "
                "turn a read transaction into a write that can fail with \"database is locked\"")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        turn = _immediate.get()
        if not turn:
            connection.exec_driver_sql("BEGIN")
            return
        if queue and isinstance(turn, WriterTurn):
            turn.take(queue)
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@event.listens_for(Session, "after_commit", insert=True)
@event.listens_for(Session, "after_rollback", insert=True)
def _end_of_turn(_session: Session) -> None:
    """A `write()`'s transaction is over: the next writer's turn, before the commit's other
    listeners (such as waking the outbox's workers over the network) run."""
    turn = _immediate.get()
    if isinstance(turn, WriterTurn):
        turn.give_back()


def is_sqlite() -> bool:
    return db.engine.dialect.name == "sqlite"


@contextmanager
def locking() -> Iterator[None]:
    """Make every transaction begun inside take SQLite's write lock at once (raw connections),
    after waiting for this writer's turn; a block inside another shares the outer one's turn."""
    outer = _immediate.get()
    turn = outer if isinstance(outer, WriterTurn) else WriterTurn()
    token = _immediate.set(turn)
    try:
        yield
    finally:
        _immediate.reset(token)
        if turn is not outer:
            turn.give_back()


@lru_cache(maxsize=32)
def driver_binds(columns: tuple[Any, ...], dialect: Any) -> tuple[Callable[[Any], Any], ...]:
    """For statements sent through `driver_write`: each column's value as the driver takes it,
    bound as the column's type binds it through SQLAlchemy (JSON as text, a UTC time as
    SQLAlchemy writes it), so rows written either way read back the same."""
    return tuple(column.type.bind_processor(dialect) or unchanged for column in columns)


def unchanged(value: Any) -> Any:
    """The bind of a column whose type binds nothing: the value as it is."""
    return value


@contextmanager
def driver_write(connection: Connection) -> Iterator[Any]:
    """A write transaction straight on a SQLite connection's driver (`sqlite3`) connection,
    yielded: the writer's turn, `BEGIN IMMEDIATE`, the caller's statements, `COMMIT` (or
    `ROLLBACK`), the turn given back, as `locking()` does. For a loop that writes one small
    statement per item (the bulk sender's mark after each message), where SQLAlchemy's
    transaction events and statement machinery cost several times the statement itself.
    `connection` must have no SQLAlchemy transaction of its own open."""
    with driver_transaction(connection.engine, connection.connection.driver_connection) as raw:
        yield raw


@contextmanager
def driver_transaction(engine: Engine, raw: Any) -> Iterator[Any]:
    """`driver_write` on a driver connection of `engine`'s held by the caller (see
    `own_driver_connection`)."""
    turn = WriterTurn()
    queue = _WRITERS.get(engine)
    try:
        if queue is not None:
            turn.take(queue)
        raw.execute("BEGIN IMMEDIATE")
        try:
            yield raw
        except BaseException:
            raw.execute("ROLLBACK")
            raise
        raw.execute("COMMIT")
    finally:
        turn.give_back()


def own_driver_connection(engine: Engine) -> Any:
    """A driver connection of `engine`'s (made as the pool makes them), kept by the caller for
    as long as it likes, outside the pool: a process's one busy writer (`engine.api`'s group
    commit) saves the pool's check-out and check-in, with its rollback, on every
    transaction. Closed when the caller drops it."""
    pooled = engine.raw_connection()
    driver = pooled.driver_connection
    pooled.detach()
    return driver


@contextmanager
def write() -> Iterator[Any]:
    """A write transaction on `db.session`: commits on success, rolls back on error.

    It first ends whatever read transaction the session had open, by rolling it back: a read is
    never committed as a write, and changes made outside `write()` are refused
    (`ChangedOutsideWrite`) rather than saved by whichever transaction happens to come next.
    Then it begins a new one that takes SQLite's
    write lock at once, so the writer waits its turn instead of failing later. Objects loaded
    before are expired, so what the write reads is current (sessions keep objects loaded
    across commits, `expire_on_commit=False`, for templates rendered after a write). A `write()`
    inside another joins it: the outer one commits both, or neither.
    """
    session = db.session()
    if session.info.get(WRITING):
        yield session  # nested: join the enclosing write, which commits or rolls back
        return
    refuse_pending_changes(session)
    if session.in_transaction():
        session.rollback()  # a read transaction: ended, never committed as a write
    session.expire_all()  # what the write reads must come from inside its transaction
    session.info[WRITING] = True
    try:
        with locking():
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
    finally:
        session.info.pop(WRITING, None)


class ChangedOutsideWrite(RuntimeError):
    """ORM objects were changed outside `write()`. Committing them later, from whichever
    transaction comes next, is how a read turns into a write that SQLite refuses ("database is
    locked") after the work it records was done (an email handed to SMTP, then not marked sent,
    then sent again). Change objects inside the `write()` that stores them."""


def refuse_pending_changes(session: Session) -> None:
    """Raise `ChangedOutsideWrite` when the session holds unsaved changes."""
    changed = [obj for obj in session.dirty if session.is_modified(obj)]
    pending = [*session.new, *changed, *session.deleted]
    if pending:
        names = ", ".join(sorted({type(obj).__name__ for obj in pending}))
        raise ChangedOutsideWrite(f"unsaved changes to {names} made outside engine.db.write()")


def delete_in_chunks(model: Any, *conditions: Any, chunk: int = 5000) -> int:
    """Delete matching rows a few thousand per transaction, so that web requests never wait
    long for SQLite's write lock behind a large clean-up. Returns how many were deleted."""
    from sqlalchemy import delete, select
    key = model.__mapper__.primary_key[0]
    total = 0
    while True:
        with write() as session:
            ids = select(key).where(*conditions).limit(chunk).scalar_subquery()
            removed = session.execute(delete(model).where(key.in_(ids))).rowcount
        total += removed
        if removed < chunk:
            return total
