"""Bulk writes on PostgreSQL: `engine.bulk` against SQLAlchemy's own executemany, same rows.

    python bench/bulk_writes.py [--rows N] [--repeat R]

A table shaped like a workflow batch's history rows (ints, short strings, two UTC times) in a
database of its own, created on the server of `MAGNET_BENCH_DATABASE_URL` (default
`postgresql://postgres@127.0.0.1/postgres`) and dropped afterwards. Each way inserts, then
updates, `--rows` rows at a time, `--repeat` times, in one transaction, alternating twice:
SQLAlchemy's `insert(table)` with a list of rows (its "insertmanyvalues": one statement with a
parameter per value) and `update(...).where(id == bindparam)` with a list (one UPDATE per row,
pipelined), against `engine.bulk.insert_rows` / `update_rows` (one statement over `unnest`
arrays). Printed: the CPU per statement of this process (the client: SQLAlchemy, psycopg) and
of the server process serving the connection (read from `/proc`, so run it on the database's
machine), and the wall time. Writes `bench/results/bulk_writes.json`.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `engine` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    insert,
    text,
    update,
)
from sqlalchemy.engine import make_url

from bench.harness import Report, print_targets
from engine import bulk
from engine.db import UTCDateTime

DEFAULT_URL = "postgresql://postgres@127.0.0.1/postgres"
DATABASE = "magnet_bench_bulk"
METADATA = MetaData()
RUNS = Table("bench_step_runs", METADATA, Column("id", Integer, primary_key=True),
             Column("enrolment_id", Integer), Column("workflow_id", Integer),
             Column("version", Integer), Column("step", String(40)), Column("kind", String(20)),
             Column("outcome", String(300)), Column("due_at", UTCDateTime),
             Column("at", UTCDateTime))


def _rows(start: int, count: int, now: datetime) -> list[dict[str, Any]]:
    return [{"enrolment_id": start + i, "workflow_id": 1, "version": 1, "step": "wait-3-days",
             "kind": "wait", "outcome": "", "due_at": now, "at": now} for i in range(count)]


def _changes(first_id: int, count: int, now: datetime) -> list[dict[str, Any]]:
    return [{"id": first_id + i, "step": "send-welcome", "outcome": "sent", "at": now}
            for i in range(count)]


WAYS = {
    "SQLAlchemy": (
        lambda c, rows: c.execute(insert(RUNS), rows),
        lambda c, changes: c.execute(update(RUNS).where(RUNS.c.id == bindparam("row_id")), [
            {"row_id": change["id"], **{k: v for k, v in change.items() if k != "id"}}
            for change in changes])),
    "engine.bulk": (
        lambda c, rows: bulk.insert_rows(c, RUNS, rows),
        lambda c, changes: bulk.update_rows(c, RUNS, changes)),
}


def _server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(engine: Any, way: str, count: int, repeat: int) -> dict[str, float]:
    write_rows, write_changes = WAYS[way]
    now = datetime.now(UTC)
    figures: dict[str, float] = {}
    with engine.begin() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar()
        first = connection.execute(text("SELECT coalesce(max(id), 0) + 1 FROM bench_step_runs")
                                   ).scalar()
        for kind in ("insert", "update"):
            server, client, wall = _server_cpu(pid), time.process_time(), time.perf_counter()
            for n in range(repeat):
                if kind == "insert":
                    write_rows(connection, _rows(n * count, count, now))
                else:
                    write_changes(connection, _changes(first + n * count, count, now))
            figures[f"{kind}_client_ms"] = (time.process_time() - client) / repeat * 1000
            figures[f"{kind}_server_ms"] = (_server_cpu(pid) - server) / repeat * 1000
            figures[f"{kind}_wall_ms"] = (time.perf_counter() - wall) / repeat * 1000
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=100)
    options = parser.parse_args()
    server = make_url(os.environ.get("MAGNET_BENCH_DATABASE_URL", DEFAULT_URL)).set(
        drivername="postgresql+psycopg")
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}"'))
        connection.execute(text(f'CREATE DATABASE "{DATABASE}"'))
    engine = create_engine(server.set(database=DATABASE))
    report = Report("bulk_writes", f"{options.rows} rows per statement on PostgreSQL",
                    {"rows": options.rows, "repeat": options.repeat})
    try:
        METADATA.create_all(engine)
        results: dict[str, list[dict[str, float]]] = {way: [] for way in WAYS}
        for _ in range(2):
            for way in WAYS:
                figures = measure(engine, way, options.rows, options.repeat)
                results[way].append(figures)
                print(f"  {way:12s} " + "  ".join(
                    f"{kind}: client {figures[f'{kind}_client_ms']:.2f} ms, server "
                    f"{figures[f'{kind}_server_ms']:.2f} ms, wall {figures[f'{kind}_wall_ms']:.2f}"
                    " ms" for kind in ("insert", "update")), flush=True)
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}"'))
        admin.dispose()
    for kind in ("insert", "update"):
        def total(way: str, kind: str = kind) -> float:
            return min(f[f"{kind}_client_ms"] + f[f"{kind}_server_ms"] for f in results[way])
        ratio = total("engine.bulk") / total("SQLAlchemy")
        report.target(f"{kind}: CPU of engine.bulk / SQLAlchemy's (client + server)", ratio,
                      "< 1", ratio < 1)
    report.extra.update(results=results)
    print_targets(report, report.write())


if __name__ == "__main__":
    main()
