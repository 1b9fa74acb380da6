"""The scale-out store: PostgreSQL through psycopg 3, same schema and SQL as SQLite.

`schema` puts every table in a schema of its own (created when missing): tests use one per run.

Several collector processes may share the database (docs/scale-out.md): they migrate one at a time (a session
advisory lock), and code that decides a write on what it read locks it with `Sql.for_update()`.

A lost connection (the server restarted, or dropped it) is opened again at the start of the next transaction
or read, a few times with a short wait. A transaction that fails because the connection went, mid-way or
because the server stays away, raises StoreUnavailable: nothing of it was committed, the caller retries.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row

from collector.store.base import DataRejected, Row, Store, Writer
from collector.store.migrations import Migration
from linewarden.errors import StorageFull, StoreError, StoreUnavailable

log = logging.getLogger(__name__)

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# A value PostgreSQL (or psycopg, e.g. a NUL in text) refuses: bad data, not a failing database.
_DATA_ERRORS = (psycopg.DataError, psycopg.IntegrityError, UnicodeEncodeError)
# The connection, not the statement, failed: the server went away or closed it.
_LINK_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)
SNAPSHOT_BATCH = 1000
CONNECT_ATTEMPTS = 3
CONNECT_WAIT_S = 0.5
CONNECT_TIMEOUT_S = 5
# Held while migrating: collectors that start together on one database apply each migration once.
MIGRATION_LOCK_KEY = 0x6C77_6D69


@contextmanager
def _data_errors() -> Iterator[None]:
    try:
        yield
    except _DATA_ERRORS as exc:
        raise DataRejected(f"{exc.__class__.__name__}: {exc}") from exc


def _pg(sql: str) -> str:
    # Our SQL uses `?` placeholders and no `%`; psycopg wants `%s`.
    return sql.replace("?", "%s")


class _PgSql:
    writing_ctes = True

    def __init__(self, conn: psycopg.Connection[Row]) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with _data_errors(), self._conn.cursor() as cur:
            cur.execute(_pg(sql), tuple(params))
            return max(cur.rowcount, 0)

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with _data_errors(), self._conn.cursor() as cur:
                cur.executemany(_pg(sql), [tuple(r) for r in rows])

    def values(self, types: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
        columns = ", ".join(f"?::{t}[]" for t in types)
        return f"SELECT * FROM unnest({columns})", [list(column) for column in zip(*rows, strict=True)]

    def for_update(self, skip_locked: bool = False) -> str:
        return " FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE"
    def insert_new(self, table: str, columns: Sequence[str], key: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        # COPY into a temporary table of the connection, then one INSERT ... SELECT that skips the keys stored
        # already (COPY itself cannot): a third of executemany's client CPU for a batch of events.
        if not rows:
            return
        stage, names = f"lw_stage_{table}", ", ".join(columns)
        with _data_errors(), self._conn.cursor() as cur:
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table}) ON COMMIT DELETE ROWS")
            with cur.copy(f"COPY {stage} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            # Both in one round trip (a query without parameters may hold several statements).
            cur.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} ON CONFLICT ({', '.join(key)}) DO NOTHING;"
                f" DELETE FROM {stage}"
            )

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with _data_errors(), self._conn.cursor() as cur:
            cur.execute(_pg(sql), tuple(params))
            return list(cur.fetchall())

    def tuples(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with _data_errors(), self._conn.cursor(row_factory=tuple_row) as cur:
            cur.execute(_pg(sql), tuple(params))
            return cur.fetchall()


class _PgSnapshot:
    def __init__(self, conn: psycopg.Connection[Row], tables: list[str]) -> None:
        self._conn, self._tables = conn, tables

    def _checked(self, table: str) -> str:
        if table not in self._tables:
            raise StoreError(f"no such table: {table}")
        return table

    def count(self, table: str) -> int:
        row = self._conn.execute(f"SELECT COUNT(*) AS n FROM {self._checked(table)}").fetchone()
        return 0 if row is None else int(row["n"])

    def rows(self, table: str) -> Iterator[Row]:
        with self._conn.cursor(name=f"lw_export_{table}") as cur:  # server-side: batches, not the whole table
            cur.execute(f"SELECT * FROM {self._checked(table)}")
            while batch := cur.fetchmany(SNAPSHOT_BATCH):
                yield from batch


class PostgresStore(Store):
    def __init__(self, url: str, schema: str | None = None) -> None:
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise StoreError(f"bad schema name {schema!r}")
        self._url, self._schema = url, schema
        try:
            self._conn = self._connect()
        except psycopg.Error as exc:
            raise StoreError(f"cannot open PostgreSQL database: {exc}") from exc
        self._lock = threading.RLock()
        self._sql = _PgSql(self._conn)
        self.reconnects = 0  # connections opened again after one was lost

    def _connect(self) -> psycopg.Connection[Row]:
        conn: psycopg.Connection[Row] = psycopg.connect(
            self._url, autocommit=True, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT_S
        )
        try:
            if self._schema is not None:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self._schema}")
                conn.execute(f"SET search_path TO {self._schema}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _usable(self) -> _PgSql:
        """The connection, opened again if it was lost (bounded retry with wait); called under the lock."""
        if not self._conn.broken:
            return self._sql
        failure: Exception | None = None
        for attempt in range(CONNECT_ATTEMPTS):
            if attempt:
                time.sleep(CONNECT_WAIT_S)
            try:
                self._conn = self._connect()
            except psycopg.Error as exc:
                failure = exc
                continue
            self._sql = _PgSql(self._conn)
            self.reconnects += 1
            log.warning("PostgreSQL connection lost earlier; connected again")
            return self._sql
        raise StoreUnavailable(f"PostgreSQL unreachable: {_first_line(failure)}")

    def migrate(self, migrations: Sequence[Migration] | None = None) -> list[tuple[str, int]]:
        with self._lock:
            self._usable().execute("SELECT pg_advisory_lock(?)", (MIGRATION_LOCK_KEY,))
            try:
                return super().migrate(migrations)
            finally:
                with contextlib.suppress(psycopg.Error):
                    self._usable().execute("SELECT pg_advisory_unlock(?)", (MIGRATION_LOCK_KEY,))

    @property
    def id_column(self) -> str:
        return "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"

    @contextmanager
    def transaction(self) -> Iterator[Writer]:
        """One write transaction; PostgreSQL's disk full (SQLSTATE 53100) raises StorageFull and a lost
        connection StoreUnavailable, both rolled back."""
        try:
            with self._lock, self._begin() as sql:
                yield Writer(sql)
        except psycopg.errors.DiskFull as exc:
            raise StorageFull(f"PostgreSQL: {exc}") from exc
        except _LINK_ERRORS as exc:
            raise StoreUnavailable(f"PostgreSQL connection lost: {_first_line(exc)}") from exc

    @contextmanager
    def _begin(self) -> Iterator[_PgSql]:
        # A connection the server closed while idle shows it only when used: a failed BEGIN is tried once more
        # on a new connection, so the first transaction after a server restart need not fail.
        sql = self._usable()
        try:
            tx = self._conn.transaction()
            tx.__enter__()
        except _LINK_ERRORS:
            if not self._conn.broken:
                raise
            sql = self._usable()
            tx = self._conn.transaction()
            tx.__enter__()
        with contextlib.ExitStack() as stack:
            stack.push(tx)
            yield sql

    @contextmanager
    def _read(self) -> Iterator[_PgSql]:
        try:
            with self._lock:
                yield self._usable()
        except _LINK_ERRORS as exc:
            raise StoreUnavailable(f"PostgreSQL connection lost: {_first_line(exc)}") from exc

    @contextmanager
    def _read_consistent(self) -> Iterator[_PgSql]:
        with self._read() as sql:
            if self._conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                yield sql  # inside a transaction of this connection already: its view
                return
            with self._conn.transaction():
                sql.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield sql

    def table_names(self) -> list[str]:
        with self._read() as sql:
            rows = sql.query("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        return sorted(r["table_name"] for r in rows)

    def table_columns(self, table: str) -> list[str]:
        with self._read() as sql:
            rows = sql.query(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
                " AND table_name = ? ORDER BY ordinal_position",
                (table,),
            )
        return [r["column_name"] for r in rows]

    @contextmanager
    def snapshot(self) -> Iterator[_PgSnapshot]:
        tables = self.table_names()
        try:
            with self._lock:
                self._usable()
            with self._lock, self._conn.transaction():
                self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield _PgSnapshot(self._conn, tables)
        except _LINK_ERRORS as exc:
            raise StoreUnavailable(f"PostgreSQL connection lost: {_first_line(exc)}") from exc

    def after_bulk_load(self, tx: Writer) -> None:
        for r in tx.sql.query("SELECT table_name, column_name FROM information_schema.columns"
                              " WHERE table_schema = current_schema() AND is_identity = 'YES'"):
            table, column = r["table_name"], r["column_name"]
            tx.sql.query(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                         f" COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _first_line(exc: BaseException | None) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else exc.__class__.__name__
