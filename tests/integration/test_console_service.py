"""The collector mounts the console on the API's server unless `[console] enabled = false` (served under its
prefix: tests/browser run `collector run` and use it)."""

from __future__ import annotations

from pathlib import Path

from collector.service import CollectorService
from collector.store.sqlite import SqliteStore
from linewarden.config.collector import CollectorConfig


def _service(tmp_path: Path, enabled: bool) -> CollectorService:
    store = SqliteStore(tmp_path / f"{enabled}.db")
    store.migrate()
    config = CollectorConfig.model_validate({"collector": {"data_dir": str(tmp_path)},
                                             "console": {"enabled": enabled, "prefix": "/ui"}})
    return CollectorService(config, store, serve_api=True)


def test_the_console_is_mounted_under_its_prefix_or_not_at_all(tmp_path: Path) -> None:
    on, off = _service(tmp_path, True), _service(tmp_path, False)
    assert on.console is not None and off.console is None
    assert on.api is not None and off.api is not None  # the API is served either way
    on.store.close()
    off.store.close()
