"""A due-steps batch's enrolments and due rows as plain data, written back with Core.

A batch of 500 due rows loaded 1,000 ORM objects (the due rows and their enrolments) and wrote
each changed one through the unit of work: an UPDATE of the enrolment and a DELETE or UPDATE of
the due row per enrolment, with the ORM's change tracking around each, which cost more than the
steps themselves. Here the batch reads both with one Core SELECT each, the runner changes them
as plain objects (`hold`, `finish`, a goal's `converted_at`), and `write()` writes what changed
at the end of the batch, in its transaction: one DELETE, and one multi-row UPDATE or INSERT per
table. A run undone by a savepoint restores the values it had saved (`saved`, `restore`), as
the ORM's rollback restores its objects.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import delete, select

from engine import bulk
from engine.db import db, is_sqlite
from plugins.workflows.models import DueStep, Enrolment, Workflow

ENROLMENTS, DUE = Enrolment.__table__, DueStep.__table__
ENROLMENT_CHANGES = ("status", "step", "step_at", "exit_reason", "finished_at", "converted_at")
DUE_CHANGES = ("step", "due_at", "waiting", "watching", "held")


@dataclass(eq=False)
class EnrolmentRow:
    """An enrolment, as `Enrolment` names its columns (the steps read it the same way)."""

    id: int
    workflow_id: int
    contact_id: int
    version: int
    status: str
    step: str
    reason: str
    exit_reason: str
    entered_at: datetime
    step_at: datetime
    finished_at: datetime | None
    converted_at: datetime | None
    test: bool
    tester: str


@dataclass(eq=False)
class DueRow:
    """A due row, as `DueStep` names its columns; `id` None until written."""

    id: int | None
    enrolment_id: int
    workflow_id: int
    contact_id: int
    step: str
    due_at: datetime
    waiting: bool = False
    watching: bool = False
    held: str = ""


@dataclass
class Batch:
    """What a batch read, and each row's values as read (to write only what changed)."""

    claimed: list[DueRow]
    enrolments: dict[int, EnrolmentRow]
    read: dict[int, tuple[Any, ...]]  # id(row) -> its values as read


_NAMES = {kind: tuple(f.name for f in fields(kind)) for kind in (EnrolmentRow, DueRow)}
_GETTERS = {kind: attrgetter(*names) for kind, names in _NAMES.items()}


def _values(row: Any) -> tuple[Any, ...]:
    return _GETTERS[type(row)](row)


def claim(now: datetime, limit: int) -> Batch:
    """Take up to `limit` due rows of active workflows, earliest first (PostgreSQL: rows
    another batch holds are skipped), and read their enrolments."""
    active = select(Workflow.id).where(Workflow.status == "active")
    # Walk the due_at index, earliest first, and stop at `limit`. Asked of `workflow_id`
    # plainly, SQLite chose that column's index and sorted every due row of the active
    # workflows for each batch (100,000 rows due at once: a quarter of the batch's time);
    # `+ 0` keeps that index out. No tie-break on id: PostgreSQL would sort every row of one
    # moment for it (SQLite's index is in id order within a moment anyway).
    query = (select(*DUE.c).where(DUE.c.due_at <= now, (DUE.c.workflow_id + 0).in_(active))
             .order_by(DUE.c.due_at).limit(limit))
    if not is_sqlite():
        query = query.with_for_update(skip_locked=True, of=DUE)
    claimed = [DueRow(*row) for row in db.session.execute(query)]
    enrolments = {}
    if claimed:
        enrolments = {row.id: EnrolmentRow(*row) for row in db.session.execute(
            select(*ENROLMENTS.c).where(ENROLMENTS.c.id.in_(
                [d.enrolment_id for d in claimed])))}
    rows: list[Any] = [*claimed, *enrolments.values()]
    return Batch(claimed, enrolments, {id(row): _values(row) for row in rows})


def saved(rows: list[Any]) -> list[tuple[Any, tuple[Any, ...]]]:
    """The current values of these plain rows (others are the ORM's to restore)."""
    return [(row, _values(row)) for row in rows if isinstance(row, (EnrolmentRow, DueRow))]


def restore(values: list[tuple[Any, tuple[Any, ...]]]) -> None:
    for row, was in values:
        for name, value in zip(_NAMES[type(row)], was, strict=True):
            setattr(row, name, value)


def write(batch: Batch, due_rows: dict[int, Any]) -> None:
    """Write the batch's changes: claimed due rows no longer the enrolment's are deleted,
    changed ones updated, new ones inserted; changed enrolments updated."""
    connection = db.session.connection()
    kept = {id(row) for row in due_rows.values()}
    gone = [row.id for row in batch.claimed if id(row) not in kept]
    if gone:
        connection.execute(delete(DUE).where(DUE.c.id.in_(gone)))
    changed = [row for row in batch.claimed
               if id(row) in kept and _values(row) != batch.read[id(row)]]
    _update(connection, DUE, DUE_CHANGES, changed)
    new = [row for row in due_rows.values() if isinstance(row, DueRow) and row.id is None]
    if new:
        bulk.insert_rows(connection, DUE, [
            {name: getattr(row, name) for name in _NAMES[DueRow] if name != "id"}
            for row in new])
    _update(connection, ENROLMENTS, ENROLMENT_CHANGES, [
        row for row in batch.enrolments.values() if _values(row) != batch.read[id(row)]])


class LostRow(RuntimeError):
    """A row the batch changed was gone when written: the batch is undone, and runs again."""


def _update(connection: Any, table: Any, columns: tuple[str, ...], rows: list[Any]) -> None:
    if not rows:
        return
    updated = bulk.update_rows(connection, table, [
        {"id": row.id, **{name: getattr(row, name) for name in columns}} for row in rows])
    if updated not in (-1, len(rows)):
        raise LostRow(f"{table.name}: {updated} of {len(rows)} rows updated")
