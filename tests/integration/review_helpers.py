"""A collector with the September 2026 history of test_collector_cli imported (one S1 outage on 10 Sep,
08:00–11:00 UTC, raised 08:01, acknowledged 09:31) and two contracts of two vendors, with its API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from collector.api.app import create_app
from collector.api.server import ApiServer
from collector.service import wall_clock_ms
from collector.store import Store, open_store
from collector.ticketing.lifecycle import Lifecycle
from collector.tokens import create_token
from linewarden.book import ContractBook, load_book
from linewarden.cli import main
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load
from tests.integration.test_collector_cli import CONTRACT, HISTORY


def imported_config(tmp_path: Path, collector_lines: str = "") -> Path:
    """A collector config with two contracts and the shared history imported; `collector_lines` go in its
    [collector] section (e.g. a database_url)."""
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "plc.toml").write_text(CONTRACT)
    other = CONTRACT.replace('id = "plc-support"', 'id = "scada-support"').replace('"integrator"', '"scada"')
    (tmp_path / "contracts" / "scada.toml").write_text(other)
    config = tmp_path / "collector.toml"
    config.write_text(f'[collector]\ndata_dir = "{tmp_path / "data"}"\ntimezone = "UTC"\n{collector_lines}')
    history = tmp_path / "history.jsonl"
    history.write_text("\n".join(HISTORY) + "\n")
    assert main(["collector", "import", "--config", str(config), str(history)]) == 0
    return config


@dataclass
class Api:
    http: httpx.AsyncClient
    store: Store
    book: ContractBook
    data_dir: Path
    vendor: dict[str, str]  # headers of the integrator's vendor token (plc-support)
    other: dict[str, str]  # headers of the scada vendor's token
    plant: dict[str, str]


@asynccontextmanager
async def running_api(config_path: Path) -> AsyncIterator[Api]:
    config = load(CollectorConfig, config_path)
    book = load_book(config, config_path)
    store = open_store(config)
    lifecycle = Lifecycle(store, book, wall_clock_ms, "test")
    rca = config.collector.data_dir / "rca"
    server = ApiServer(create_app(store, lifecycle, wall_clock_ms, rca, book=book), "127.0.0.1", 0)
    port = await server.start()
    try:
        headers = []
        roles: tuple[tuple[Literal["vendor", "plant"], str | None], ...] = (
            ("vendor", "integrator"), ("vendor", "scada"), ("plant", None)
        )
        for role, vendor in roles:
            token, _ = create_token(store, role, vendor, f"{role}-{vendor}", wall_clock_ms(), "test", "here")
            headers.append({"Authorization": f"Bearer {token}"})
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            yield Api(http, store, book, config.collector.data_dir, *headers)
    finally:
        await server.stop()
        store.close()
