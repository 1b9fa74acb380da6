"""The collector on a full disk, with a real broker and SQLite: ingest stops acking (no PUBACK, no ack for
what is not committed), loses nothing, and resumes by itself when space returns.

Two ways to fill it: SQLite's own cap (`PRAGMA max_page_count` on the store's connection: SQLITE_FULL from
SQLite itself, no root needed), and, when the tests run as root, a real 8 MB tmpfs filled to the last byte."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from collector.ingest import Ingest
from collector.service import CollectorService, wall_clock_ms
from collector.store import open_store
from collector.store.sqlite import SqliteStore
from linewarden.cli import main
from linewarden.config.collector import CollectorConfig, LivenessConfig
from linewarden.config.load import load
from linewarden.wire import Birth, birth_topic, encode, events_topic
from tests.integration.collector_helpers import birth, heartbeats
from tests.integration.test_ingest import SITE, FakeAgent, _config
from tests.waiting import async_wait_until

pytestmark = pytest.mark.broker

Filler = Callable[[CollectorService], Callable[[], None]]  # fills the disk; returns what frees it again


def cap_pages(svc: CollectorService) -> Callable[[], None]:
    store = svc.store
    assert isinstance(store, SqliteStore)
    conn = store._conn  # fault injection: SQLite's own size cap on the store's connection
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")

    def free() -> None:
        conn.execute("PRAGMA max_page_count = 1073741823")

    return free


def fill_filesystem(svc: CollectorService) -> Callable[[], None]:
    store = svc.store
    assert isinstance(store, SqliteStore)
    filler = store.path.parent / "filler"
    # unbuffered, and the suppress outermost: a buffered file's close would retry the last partial write
    with contextlib.suppress(OSError), filler.open("wb", buffering=0) as f:
        while True:
            f.write(b"\0" * 65536)
    return filler.unlink


@contextlib.contextmanager
def tmpfs(path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the page-cap variant covers SQLITE_FULL without it")
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.mark.parametrize("fill", [cap_pages, fill_filesystem], ids=["page-cap", "tmpfs"])
async def test_full_store_holds_acks_loses_nothing_and_resumes(mosquitto, tmp_path: Path, fill: Filler) -> None:
    with contextlib.ExitStack() as stack:
        data = stack.enter_context(tmpfs(tmp_path / "fs")) if fill is fill_filesystem else tmp_path / "data"
        svc = CollectorService(_config(mosquitto, data), SqliteStore(data / "collector.db"))
        svc.store.migrate()
        await svc.start()
        agent = FakeAgent(mosquitto, "full-1")
        await agent.start()
        try:
            await async_wait_until(lambda: svc.mqtt.connected, what="collector connected")
            await agent.send(birth_topic(SITE, agent.agent), encode(birth(SITE, agent.agent)))
            await agent.send(events_topic(SITE, agent.agent), heartbeats(SITE, agent.agent, list(range(1, 51))))
            await agent.acked(50)
            free = fill(svc)
            topic = events_topic(SITE, agent.agent)
            for first in range(51, 551, 50):
                await agent.send(topic, heartbeats(SITE, agent.agent, list(range(first, first + 50))))
            await async_wait_until(lambda: svc.storage_fault is not None, what="the store full")
            await async_wait_until(lambda: svc.held_messages >= 1, what="messages held, without PUBACK")
            assert agent.acks[-1].through == 50, "nothing acked that is not committed"
            free()
            await async_wait_until(lambda: agent.acks and agent.acks[-1].through == 550, 20, what="resumed")
            assert svc.storage_fault is None and svc.held_messages == 0
            stored = sorted(r["seq"] for r in svc.store.table_rows("events") if r["agent"] == agent.agent)
            assert stored == list(range(1, 551)), "nothing lost"
        finally:
            await agent.client.stop()
            await svc.stop()
            svc.store.close()


def test_collector_agents_shows_an_agent_with_a_full_outbox_as_degraded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "collector.toml"
    config.write_text(f'[collector]\ndata_dir = "{tmp_path / "data"}"\n')
    store = open_store(load(CollectorConfig, config))
    store.migrate()
    now = wall_clock_ms()
    ingest = Ingest(store, LivenessConfig(), now)
    fault = "outbox not writable since 2026-12-01T10:00:00+00:00 (database or disk is full): 12 events wait"

    def agents(at_birth: Birth) -> dict[str, object]:
        ingest.handle(birth_topic(SITE, "a1"), encode(at_birth), wall_clock_ms())
        capsys.readouterr()
        assert main(["collector", "agents", "--config", str(config), "--format", "json"]) == 0
        [row] = json.loads(capsys.readouterr().out)
        return dict(row)

    try:
        row = agents(birth(SITE, "a1", ts=now, outbox_fault=fault))
        assert (row["liveness"], row["outbox_fault"]) == ("degraded", fault)
        row = agents(birth(SITE, "a1", ts=now))  # the agent's next birth: space is back
        assert (row["liveness"], row["outbox_fault"]) == ("alive", None)
    finally:
        store.close()
