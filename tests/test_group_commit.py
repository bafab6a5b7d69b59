"""Group commit (`engine.api.group_commit`): concurrent writers' rows in one transaction, each
answered only once its row is committed, and one row's fault only its own."""
from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager

import pytest

from engine.api.group_commit import GroupCommit

WRITERS = 8


class Database:
    """A SQLite file whose transactions are counted and can be held open at the start."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.transactions = 0
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()
        with sqlite3.connect(path) as connection:
            connection.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, "
                               "name TEXT NOT NULL UNIQUE)")

    @contextmanager
    def transaction(self):
        connection = sqlite3.connect(self.path, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            self.transactions += 1
            self.entered.set()
            self.hold.wait(10)
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()

    def names(self) -> list[str]:
        with sqlite3.connect(self.path) as connection:
            return [name for (name,) in connection.execute("SELECT name FROM rows ORDER BY id")]


def insert(connection, values):
    return connection.execute("INSERT INTO rows (name) VALUES (?) RETURNING id",
                              values).fetchone()[0]


def write_together(group: GroupCommit, database: Database, names: list[str | None]):
    """The first writer's transaction is held until every other writer has queued its row."""
    results: dict[int, object] = {}

    def one(number: int, name: str | None) -> None:
        try:
            results[number] = group.write((name,))
        except BaseException as exc:  # what the writer's caller would see
            results[number] = exc
    database.hold.clear()
    first = threading.Thread(target=one, args=(0, names[0]))
    first.start()
    assert database.entered.wait(10)
    others = [threading.Thread(target=one, args=(n, name))
              for n, name in enumerate(names) if n]
    for thread in others:
        thread.start()
    for _ in range(1000):  # every other writer queued behind the held transaction
        if len(group._queue) == len(names):
            break
        threading.Event().wait(0.005)
    database.hold.set()
    for thread in [first, *others]:
        thread.join(10)
    return [results[n] for n in range(len(names))]


@pytest.fixture
def database(tmp_path):
    return Database(str(tmp_path / "group.db"))


def test_writers_queued_behind_a_commit_share_one_transaction(database):
    group = GroupCommit(database.transaction, insert)
    names = [f"row-{n}" for n in range(WRITERS)]
    ids = write_together(group, database, names)
    assert sorted(ids) == list(range(1, WRITERS + 1))  # each got its own row's id
    assert sorted(database.names()) == sorted(names)
    assert database.transactions == 1


def test_a_lone_writer_commits_at_once_and_gets_its_id(database):
    group = GroupCommit(database.transaction, insert)
    assert group.write(("alone",)) == 1
    assert group.write(("next",)) == 2
    assert database.names() == ["alone", "next"] and database.transactions == 2


def test_one_row_at_fault_fails_alone_and_the_others_are_kept(database):
    group = GroupCommit(database.transaction, insert)
    names = [f"row-{n}" for n in range(WRITERS)]
    names[3] = None  # NOT NULL: the shared transaction fails, then each row is written alone
    results = write_together(group, database, names)
    assert isinstance(results[3], sqlite3.IntegrityError)
    assert all(isinstance(result, int) for n, result in enumerate(results) if n != 3)
    assert sorted(database.names()) == sorted(name for name in names if name)


def test_a_writer_answered_has_its_row_committed(database):
    """Nothing is answered from a transaction that did not commit: the commit itself fails."""
    group = GroupCommit(database.transaction, insert)

    @contextmanager
    def failing_commit():
        with database.transaction() as connection:
            yield connection
            raise sqlite3.OperationalError("disk I/O error")
    group._transaction = failing_commit
    with pytest.raises(sqlite3.OperationalError):
        group.write(("lost",))
    assert database.names() == []
    group._transaction = database.transaction
    assert group.write(("kept",)) == 1  # the lead was handed back: the next writer goes on


class Stopped(BaseException):
    """What gevent raises in a greenlet that is killed (`GreenletExit`)."""


def test_a_leader_stopped_mid_commit_leaves_the_others_to_commit_their_own(database):
    stopped = []

    @contextmanager
    def stopping_the_first():
        with database.transaction() as connection:
            yield connection
            if not stopped:
                stopped.append(True)
                raise Stopped()
    group = GroupCommit(stopping_the_first, insert)
    names = [f"row-{n}" for n in range(WRITERS)]
    results = write_together(group, database, names)
    assert isinstance(results[0], Stopped)
    assert all(isinstance(result, int) for result in results[1:])
    assert sorted(database.names()) == sorted(names[1:])  # the leader's row was not kept
    assert group.write(("after",)) and "after" in database.names()  # nobody left leading
