"""The default store: one SQLite file in WAL mode.

One connection, guarded by a lock, so the MQTT thread, the asyncio loop and the CLI may all call in;
each write is one `BEGIN IMMEDIATE` transaction (never a read that later has to upgrade to a write).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from collector.store.base import DataRejected, Row, Store, Writer
from linewarden.errors import StorageFull, StoreError
from linewarden.files import private_file

# What SQLite (or its binding of parameters) raises for a value it cannot hold: bad data, not a failing database.
SNAPSHOT_BATCH = 1000
_DATA_ERRORS = (OverflowError, UnicodeEncodeError, sqlite3.DataError, sqlite3.IntegrityError, sqlite3.InterfaceError)


def _no_nul(params: Sequence[Any]) -> tuple[Any, ...]:
    """PostgreSQL cannot hold a NUL in text; SQLite can, but refuses it here too, so both stores take the same
    values and an archive exported from SQLite imports into PostgreSQL. (Wire and import texts have theirs
    replaced before they reach a store; bulk `execute_many` rows come only from those.)"""
    values = tuple(params)
    if any(type(v) is str and "\x00" in v for v in values):
        raise DataRejected("a text holds a NUL character (U+0000), which the store does not keep")
    return values


@contextmanager
def _data_errors() -> Iterator[None]:
    try:
        yield
    except _DATA_ERRORS as exc:
        raise DataRejected(f"{exc.__class__.__name__}: {exc}") from exc


class _SqliteSql:
    writing_ctes = False

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with _data_errors():
            return self._conn.execute(sql, _no_nul(params)).rowcount

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with _data_errors():
            self._conn.executemany(sql, rows)

    def values(self, types: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
        row = "(" + ", ".join("?" * len(types)) + ")"
        return "VALUES " + ", ".join([row] * len(rows)), [value for r in rows for value in r]

    def for_update(self, skip_locked: bool = False) -> str:
        return ""  # BEGIN IMMEDIATE: one writer at a time, nothing to lock row by row
    def insert_new(self, table: str, columns: Sequence[str], key: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        marks = ", ".join("?" for _ in columns)
        self.execute_many(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT ({', '.join(key)}) DO NOTHING",
            rows,
        )

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with _data_errors():
            cur = self._conn.execute(sql, _no_nul(params))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def tuples(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with _data_errors():
            return self._conn.execute(sql, _no_nul(params)).fetchall()


class _SqliteSnapshot:
    def __init__(self, conn: sqlite3.Connection, tables: list[str]) -> None:
        self._conn, self._tables = conn, tables

    def _checked(self, table: str) -> str:
        if table not in self._tables:
            raise StoreError(f"no such table: {table}")
        return table

    def count(self, table: str) -> int:
        return int(self._conn.execute(f"SELECT COUNT(*) FROM {self._checked(table)}").fetchone()[0])

    def rows(self, table: str) -> Iterator[Row]:
        cur = self._conn.execute(f"SELECT * FROM {self._checked(table)}")
        names = [d[0] for d in cur.description]
        while batch := cur.fetchmany(SNAPSHOT_BATCH):
            for row in batch:
                yield dict(zip(names, row, strict=True))


class SqliteStore(Store):
    def __init__(self, path: Path | str, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        try:
            private_file(self.path)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, nothing is implicit.
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from exc
        self._lock = threading.RLock()
        self._sql = _SqliteSql(self._conn)

    @property
    def id_column(self) -> str:
        return "INTEGER PRIMARY KEY"

    @contextmanager
    def transaction(self) -> Iterator[Writer]:
        """One write transaction; a full disk (SQLITE_FULL), in a statement or at COMMIT, raises StorageFull
        with everything rolled back."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield Writer(self._sql)
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:  # SQLite has rolled back by itself after some errors
                        self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                if exc.sqlite_errorcode == sqlite3.SQLITE_FULL:
                    raise StorageFull(f"SQLite database {self.path}: {exc}") from exc
                raise

    @contextmanager
    def _read(self) -> Iterator[_SqliteSql]:
        with self._lock:
            yield self._sql

    @contextmanager
    def _read_consistent(self) -> Iterator[_SqliteSql]:
        with self._lock:
            if self._conn.in_transaction:
                yield self._sql
                return
            self._conn.execute("BEGIN")  # deferred: a read transaction, one WAL snapshot for its statements
            try:
                yield self._sql
            finally:
                self._conn.execute("ROLLBACK")

    def table_names(self) -> list[str]:
        with self._read() as sql:
            rows = sql.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        return sorted(r["name"] for r in rows)

    def table_columns(self, table: str) -> list[str]:
        with self._read() as sql:
            return [r["name"] for r in sql.query("SELECT name FROM pragma_table_info(?) ORDER BY cid", (table,))]

    @contextmanager
    def snapshot(self) -> Iterator[_SqliteSnapshot]:
        with self._lock:
            self._conn.execute("BEGIN")  # a read transaction: WAL keeps its view while writers go on
            try:
                yield _SqliteSnapshot(self._conn, self.table_names())
            finally:
                self._conn.execute("ROLLBACK")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
