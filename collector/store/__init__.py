"""The collector's store: one repository interface (`Store`), SQLite by default, PostgreSQL to scale out."""

from __future__ import annotations

from collector.store.base import Store, Writer
from linewarden.config.collector import CollectorConfig
from linewarden.errors import StoreError

SQLITE_FILE = "collector.db"

__all__ = ["SQLITE_FILE", "Store", "Writer", "open_store"]


def open_store(config: CollectorConfig, migrate: bool = True) -> Store:
    """Open (and migrate, unless told not to) the store the config names: `database_url` if set, else SQLite
    in `data_dir`."""
    try:
        url = config.collector.database()
    except ValueError as exc:
        raise StoreError(f"database_url: {exc}") from None
    store: Store
    if url:
        from collector.store.postgres import PostgresStore

        store = PostgresStore(url)
    else:
        from collector.store.sqlite import SqliteStore

        store = SqliteStore(config.collector.data_dir / SQLITE_FILE)
    if migrate:
        store.migrate()
    return store
