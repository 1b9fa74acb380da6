"""Run a test once on SQLite and once on PostgreSQL (skipped with a reason when it is absent).

    @pytest.fixture(params=STORES)
    def store(request, tmp_path):
        yield from open_store_param(request, tmp_path)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.store.base import Store
from collector.store.sqlite import SqliteStore

STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def open_store_param(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s: Store = SqliteStore(tmp_path / "collector.db")
        s.migrate()
        yield s
        s.close()
        return
    import psycopg

    from collector.store.postgres import PostgresStore

    url, schema = request.getfixturevalue("postgres_url"), f"lw_test_{uuid.uuid4().hex[:12]}"
    s = PostgresStore(url, schema=schema)
    s.migrate()
    yield s
    s.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
