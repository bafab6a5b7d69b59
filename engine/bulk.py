"""Many rows in one statement: INSERT and UPDATE of hundreds of rows at a time.

The busiest writers (events recorded by a batch, a workflow batch's history and emails, a
mailing's ledger rows) write hundreds of rows per statement. SQLAlchemy sends such an
`executemany` to PostgreSQL as one `INSERT … VALUES (…), (…)` with a parameter per value
("insertmanyvalues"): a statement of thousands of parameters that psycopg splits with a regex
and PostgreSQL parses and plans afresh each time (neither can cache a statement that long),
and an UPDATE as one statement per row. At 500 rows of eight columns an INSERT cost 11–12.5 ms
of client and 6.6–7.1 ms of server CPU that way, an UPDATE of four columns 9 ms and 6–6.5 ms
(`bench/bulk_writes.py`).

On PostgreSQL these helpers send one short statement per table instead, whatever the number
of rows, with one parameter per column: the column's values as an array literal, which the
server parses itself and `unnest`s back into rows (`INSERT … SELECT … FROM unnest(…)`,
`UPDATE … FROM unnest(…)`). The same INSERT then costs 3.1–3.2 ms and 2.1 ms, the UPDATE
1.9–2.2 ms and 2.9–4.1 ms. Values are bound as each column's type binds them (a `TypeDecorator`'s
`process_bind_param`, JSON as text), so rows read back the same either way. Rows are inserted
in the order given (`WITH ORDINALITY … ORDER BY`), so ids from a sequence ascend with it.
On SQLite (no array type) the rows go as a multi-row `INSERT … VALUES (?, …), (?, …)`, up to
`SQLITE_ROWS` rows or SQLite's limit of parameters per statement, its SQL made once per shape,
and an UPDATE as the driver's `executemany` of one short statement; both through
`exec_driver_sql`, with each value bound as SQLAlchemy binds it for its column. SQLAlchemy's
own executemany did the same work with its compiler's per-row bookkeeping, which cost more
than SQLite's: about a third of an API drain's time inside its write transaction, while every
web process waits for that transaction to end. SQLite numbers a multi-row `VALUES` in order;
it does not promise the order of `RETURNING` rows, so callers sort the ids.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import date, datetime
from functools import lru_cache
from itertools import chain
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Integer,
    Numeric,
    String,
    Table,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator

from engine.db import driver_binds, unchanged

PG = postgresql.dialect()
SQLITE = sqlite.dialect()


def insert_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]], *,
                returning: Sequence[str] = (), skip_conflicts: Sequence[str] = (),
                overwrite: Sequence[str] = ()) -> list[tuple[Any, ...]]:
    """INSERT `rows` (dicts with the same keys) into `table`; returns the `returning` columns
    of each inserted row as tuples (in no promised order). With `skip_conflicts` (the columns
    of a unique index), rows that would break it are left out (`ON CONFLICT DO NOTHING`); with
    `overwrite` too, such a row sets these columns of the row already there instead (`ON
    CONFLICT DO UPDATE`, an upsert: no two of `rows` may then share a key)."""
    if not rows:
        return []
    if overwrite and not skip_conflicts:
        raise ValueError("overwrite needs skip_conflicts: the unique index that conflicts")
    names = tuple(rows[0])
    defaults = _python_defaults(table, names)
    if defaults:  # as SQLAlchemy fills them in for the columns a row leaves out
        rows = [{**row, **{name: make() for name, make in defaults}} for row in rows]
        names = (*names, *(name for name, _ in defaults))
    if connection.dialect.name != "postgresql":
        return _sqlite_insert(connection, table, names, rows, tuple(returning),
                              tuple(skip_conflicts), tuple(overwrite))
    statement = _insert_statement(table, names, tuple(returning), tuple(skip_conflicts),
                                  tuple(overwrite))
    result = connection.execute(statement, _arrays(table, names, rows))
    return [tuple(row) for row in result] if returning else []


def update_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]], *,
                key: str = "id") -> int:
    """UPDATE each row of `table` whose `key` column equals a dict's `key` with the dict's
    other values (every dict has the same keys); returns how many rows were updated."""
    if not rows:
        return 0
    names = tuple(name for name in rows[0] if name != key)
    if connection.dialect.name != "postgresql":
        sql = _sqlite_update_sql(table, key, names)
        return connection.exec_driver_sql(
            sql, _sqlite_values(connection, table, (*names, key), rows)).rowcount
    statement = _update_statement(table, key, names)
    return connection.execute(statement, _arrays(table, (key, *names), rows)).rowcount


# --- SQLite --------------------------------------------------------------------------------------

SQLITE_ROWS = 1000  # rows per INSERT statement at most, as SQLAlchemy's insertmanyvalues


def _sqlite_insert(connection: Connection, table: Table, names: tuple[str, ...],
                   rows: Sequence[dict[str, Any]], returning: tuple[str, ...],
                   conflicts: tuple[str, ...], overwrite: tuple[str, ...]
                   ) -> list[tuple[Any, ...]]:
    """Multi-row INSERTs of at most `SQLITE_ROWS` rows and SQLite's limit of parameters."""
    per_statement = max(1, min(SQLITE_ROWS, _sqlite_parameters(connection) // len(names)))
    values = _sqlite_values(connection, table, names, rows)
    found: list[tuple[Any, ...]] = []
    for start in range(0, len(values), per_statement):
        chunk = values[start:start + per_statement]
        sql = _sqlite_insert_sql(table, names, len(chunk), returning, conflicts, overwrite)
        result = connection.exec_driver_sql(sql, tuple(chain.from_iterable(chunk)))
        if returning:
            found.extend(tuple(row) for row in result)
    return found


def _sqlite_values(connection: Connection, table: Table, names: tuple[str, ...],
                   rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Each row's values in `names`' order, bound as SQLAlchemy binds them for their columns
    (a `TypeDecorator`'s `process_bind_param`, JSON as text, times as SQLite's text). A value
    that is the very object the row before had (the same dict of defaults in every new
    contact, one time for a whole batch) is bound once: JSON's encoding was most of the cost.
    A column whose type binds nothing (text, numbers) is copied without a call per value."""
    columns = []
    binds = driver_binds(tuple(table.c[name] for name in names), connection.dialect)
    for bind, name in zip(binds, names, strict=True):
        if bind is unchanged:
            columns.append([row[name] for row in rows])
            continue
        bound: list[Any] = []
        last: Any = bound  # no value is this list
        for row in rows:
            value = row[name]
            if value is not last:
                last, written = value, bind(value)
            bound.append(written)
        columns.append(bound)
    return list(zip(*columns))


def _sqlite_parameters(connection: Connection) -> int:
    """SQLite's limit of parameters in one statement (32,766 since 3.32; 999 before)."""
    raw = connection.connection.driver_connection
    getlimit = getattr(raw, "getlimit", None)
    return getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if getlimit else 999


@lru_cache(maxsize=256)
def _sqlite_insert_sql(table: Table, names: tuple[str, ...], count: int,
                       returning: tuple[str, ...], conflicts: tuple[str, ...],
                       overwrite: tuple[str, ...]) -> str:
    row = "(" + ", ".join("?" * len(names)) + ")"
    sql = (f"INSERT INTO {_quoted_sqlite(table.name)} "
           f"({', '.join(_quoted_sqlite(name) for name in names)}) "
           f"VALUES {', '.join([row] * count)}")
    if conflicts:
        sql += _on_conflict(conflicts, overwrite, _quoted_sqlite)
    if returning:
        sql += f" RETURNING {', '.join(_quoted_sqlite(name) for name in returning)}"
    return sql


@lru_cache(maxsize=128)
def _sqlite_update_sql(table: Table, key: str, names: tuple[str, ...]) -> str:
    settings = ", ".join(f"{_quoted_sqlite(name)} = ?" for name in names)
    return (f"UPDATE {_quoted_sqlite(table.name)} SET {settings} "
            f"WHERE {_quoted_sqlite(key)} = ?")


def _quoted_sqlite(name: str) -> str:
    return SQLITE.identifier_preparer.quote(name)


def _on_conflict(conflicts: tuple[str, ...], overwrite: tuple[str, ...],
                 quoted: Callable[[str], str]) -> str:
    """The `ON CONFLICT` clause, the same on both backends."""
    action = ("DO UPDATE SET " + ", ".join(f"{quoted(name)} = excluded.{quoted(name)}"
                                           for name in overwrite)) if overwrite else "DO NOTHING"
    return f" ON CONFLICT ({', '.join(quoted(name) for name in conflicts)}) {action}"


# --- PostgreSQL ----------------------------------------------------------------------------------

@lru_cache(maxsize=128)
def _python_defaults(table: Table, names: tuple[str, ...]
                     ) -> tuple[tuple[str, Callable[[], Any]], ...]:
    """The columns left out that have a default made in Python (`default=0`,
    `default=utcnow`), each with a function making its value; server defaults are the
    database's to fill."""
    found = []
    for column in table.columns:
        default = column.default
        if column.name in names or default is None:
            continue
        if default.is_scalar:
            found.append((column.name, lambda value=default.arg: value))
        elif default.is_callable:
            found.append((column.name, lambda make=default.arg: make(None)))
    return tuple(found)


@lru_cache(maxsize=128)
def _insert_statement(table: Table, names: tuple[str, ...], returning: tuple[str, ...],
                      conflicts: tuple[str, ...], overwrite: tuple[str, ...]) -> Any:
    columns = ", ".join(_quoted(name) for name in names)
    aliases = ", ".join(f"c{i}" for i in range(len(names)))
    sql = (f"INSERT INTO {_quoted(table.name)} ({columns}) SELECT {aliases} FROM "
           f"{_unnest(table, names)} WITH ORDINALITY AS u({aliases}, _n) ORDER BY _n")
    if conflicts:
        sql += _on_conflict(conflicts, overwrite, _quoted)
    if returning:
        sql += f" RETURNING {', '.join(_quoted(name) for name in returning)}"
    return text(sql)


@lru_cache(maxsize=128)
def _update_statement(table: Table, key: str, names: tuple[str, ...]) -> Any:
    target = _quoted(table.name)
    aliases = ", ".join(f"c{i}" for i in range(len(names) + 1))
    settings = ", ".join(f"{_quoted(name)} = u.c{i + 1}" for i, name in enumerate(names))
    return text(f"UPDATE {target} SET {settings} FROM {_unnest(table, (key, *names))} "
                f"AS u({aliases}) WHERE {target}.{_quoted(key)} = u.c0")


def _unnest(table: Table, names: tuple[str, ...]) -> str:
    casts = ", ".join(f"CAST(:a{i} AS {_array_of(table.c[name].type)}[])"
                      for i, name in enumerate(names))
    return f"unnest({casts})"


def _array_of(column_type: Any) -> str:
    """The array's element type: the column's, but text for strings and plain numeric for
    decimals, so that a value too long or too precise is refused when it is assigned to the
    column, as a plain INSERT refuses it (a cast to `VARCHAR(40)` would cut it silently)."""
    base = column_type.impl_instance if isinstance(column_type, TypeDecorator) else column_type
    if isinstance(base, String) and not isinstance(base, JSON):
        return "TEXT"
    if isinstance(base, Numeric) and not isinstance(base, Integer):
        return "NUMERIC"
    return column_type.compile(dialect=PG)


def _quoted(name: str) -> str:
    """A table's or column's name as SQLAlchemy writes it (quoted only where it must be)."""
    return PG.identifier_preparer.quote(name)


def _arrays(table: Table, names: tuple[str, ...], rows: Sequence[dict[str, Any]]
            ) -> dict[str, str]:
    """Each column's values as a PostgreSQL array literal, `{…}`."""
    encoders = _encoders(table, names)
    return {f"a{i}": "{" + ",".join(map(encode, (row[name] for row in rows))) + "}"
            for i, (name, encode) in enumerate(zip(names, encoders, strict=True))}


@lru_cache(maxsize=128)
def _encoders(table: Table, names: tuple[str, ...]) -> tuple[Callable[[Any], str], ...]:
    return tuple(_encoder(table.c[name].type) for name in names)


def _encoder(column_type: Any) -> Callable[[Any], str]:
    """An array element as PostgreSQL reads it: NULL, or the value's text in double quotes
    (backslashes and quotes escaped), bound as SQLAlchemy would bind it for this type."""
    before: Callable[[Any], Any] | None = None
    if isinstance(column_type, TypeDecorator):
        decorator = column_type
        before = lambda value: decorator.process_bind_param(value, PG)  # noqa: E731
        column_type = column_type.impl_instance
    if isinstance(column_type, Integer) and before is None:
        return _integer
    if isinstance(column_type, JSON):
        none_as_null = column_type.none_as_null
        as_text = lambda value: None if value is None and none_as_null else json.dumps(value)  # noqa: E731
    elif isinstance(column_type, Boolean):
        as_text = lambda value: None if value is None else ("t" if value else "f")  # noqa: E731
    else:
        as_text = _plain

    def encode(value: Any) -> str:
        if before is not None:
            value = before(value)
        written = as_text(value)
        if written is None:
            return "NULL"
        return '"' + written.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return encode


def _integer(value: Any) -> str:
    return "NULL" if value is None else str(int(value))


def _plain(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)
