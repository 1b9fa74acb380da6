"""Group commit: the messages that arrive together go in one transaction, PUBACKed only once it is committed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from collector import admission
from collector.ingest import Ingest
from collector.service import CollectorService
from collector.store.base import Writer
from collector.store.sqlite import SqliteStore
from linewarden.config.collector import CollectorConfig, CollectorSection, LivenessConfig
from linewarden.wire import Ack, birth_topic, decode, encode, events_topic
from tests.integration.collector_helpers import T0, birth, heartbeats

SITE = "plant1"


class CountingStore(SqliteStore):
    """A real SQLite store that counts its committed write transactions."""

    commits = 0

    @contextmanager
    def transaction(self) -> Iterator[Writer]:
        with super().transaction() as tx:
            yield tx
        self.commits += 1


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CountingStore]:
    s = CountingStore(tmp_path / "collector.db")
    s.migrate()
    s.commits = 0
    yield s
    s.close()


def _events(store: SqliteStore, agent: str) -> list[int]:
    return sorted(r["seq"] for r in store.table_rows("events") if r["agent"] == agent)


def _messages(*agents: str) -> list[tuple[str, bytes, int]]:
    out: list[tuple[str, bytes, int]] = []
    for a in agents:
        out.append((birth_topic(SITE, a), encode(birth(SITE, a)), T0))
        out.append((events_topic(SITE, a), heartbeats(SITE, a, [1, 2]), T0))
        out.append((events_topic(SITE, a), heartbeats(SITE, a, [3]), T0))
    return out


def test_messages_handled_together_are_one_commit_with_one_ack_per_agent_run(store: CountingStore) -> None:
    ingest = Ingest(store, LivenessConfig(clock_skew_threshold=timedelta(seconds=30)), T0)
    messages = _messages("a1", "a2")
    junk = (events_topic(SITE, "a1"), b"{not json", T0)
    outs = ingest.handle_many([*messages[:3], junk, *messages[3:]])
    assert store.commits == 1
    # Each birth is acked; an agent's consecutive batches are acked once, with the run's last one.
    assert [[decode(Ack, p.payload).through for p in out] for out in outs] == [[0], [], [3], [], [0], [], [3]]
    assert _events(store, "a1") == _events(store, "a2") == [1, 2, 3]
    assert store.dead_letter_total() == 1
    assert ingest.events_stored == 6


def test_a_failing_group_rolls_back_whole_and_counts_nothing(store: CountingStore, monkeypatch: Any) -> None:
    ingest = Ingest(store, LivenessConfig(clock_skew_threshold=timedelta(seconds=30)), T0)
    screen = admission.screen

    def failing(tx: Writer, site: str, agent: str, *args: Any, **kw: Any) -> admission.Verdict:
        if agent == "a2":
            raise RuntimeError("the store failed")
        return screen(tx, site, agent, *args, **kw)

    monkeypatch.setattr(admission, "screen", failing)
    with pytest.raises(RuntimeError):
        ingest.handle_many(_messages("a1", "a2"))
    assert store.commits == 0
    assert _events(store, "a1") == [] and store.agents() == []
    assert ingest.events_stored == 0


async def test_the_service_commits_a_group_then_pubacks_and_leaves_out_only_the_failing_message(
    store: CountingStore, tmp_path: Path, monkeypatch: Any
) -> None:
    config = CollectorConfig(collector=CollectorSection(id="groups", data_dir=tmp_path))
    service = CollectorService(config, store)
    screen = admission.screen

    def failing(tx: Writer, site: str, agent: str, *args: Any, **kw: Any) -> admission.Verdict:
        if agent == "a2":
            raise RuntimeError("the store failed")
        return screen(tx, site, agent, *args, **kw)

    monkeypatch.setattr(admission, "screen", failing)
    futures = [service._on_message(topic, payload) for topic, payload, _ in _messages("a1", "a2")]
    assert not any(f.done() for f in futures)  # no PUBACK before the commit
    await asyncio.wait_for(asyncio.gather(*futures), 30)
    # The group of six failed on a2; then one by one: a1's three committed, a2's birth too, its batches failed.
    assert _events(store, "a1") == [1, 2, 3] and _events(store, "a2") == []
    assert [a.agent for a in store.agents()] == ["a1", "a2"]
    assert store.commits == 4
    assert service.held_messages == 0
