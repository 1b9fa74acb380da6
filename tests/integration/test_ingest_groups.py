"""Group commit: the messages that arrive together go in one transaction, PUBACKed only once it is committed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from collector import admission
from collector.ingest import Ingest
from collector.service import CollectorService
from collector.store.base import Sql, Store, Writer
from collector.store.sqlite import SqliteStore
from linewarden.config.collector import CollectorConfig, CollectorSection, LivenessConfig
from linewarden.domain import State
from linewarden.wire import (
    Ack,
    Event,
    GapBody,
    GapEvent,
    StateChangeBody,
    StateChangeEvent,
    birth_topic,
    build,
    death_topic,
    decode,
    encode,
    events_topic,
)
from tests.integration.collector_helpers import (
    T0,
    batch,
    birth,
    death,
    heartbeat,
    heartbeats,
    incident_opened,
    state_change,
)
from tests.integration.store_params import STORES, open_store_param

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


MINUTE = 60_000
RECEIVED = T0 + 20 * MINUTE
LIVENESS = LivenessConfig(clock_skew_threshold=timedelta(seconds=30))


def _ghost_change(seq: int) -> StateChangeEvent:
    body = build(
        StateChangeBody,
        {"target": "ghost", "asset": "elsewhere", "from": State.UP, "to": State.DOWN, "reason": "forged", "at": T0},
    )
    return StateChangeEvent(seq=seq, ts=T0, body=body)


def _batches(*events: list[Event]) -> list[tuple[str, bytes, int]]:
    return [(events_topic(SITE, "a1"), encode(batch(SITE, "a1", list(e))), RECEIVED) for e in events]


def _tables(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows without auto-numbered ids, in a fixed order."""
    out = {}
    for table in store.table_names():
        rows = [tuple(sorted((k, v) for k, v in r.items() if k != "id")) for r in store.table_rows(table)]
        out[table] = sorted(rows, key=repr)
    return out


def _alone_and_together(
    tmp_path: Path, config: LivenessConfig, group: list[tuple[str, bytes, int]], silent_until: int | None = None
) -> tuple[SqliteStore, SqliteStore]:
    """The same group stored message by message, and as one group (its batches one run), on fresh stores."""
    stores = []
    for name, together in (("alone", False), ("together", True)):
        store = SqliteStore(tmp_path / f"{name}.db")
        store.migrate()
        ingest = Ingest(store, config, T0)
        ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1")), T0)
        if silent_until is not None:
            assert ingest.check_liveness(silent_until)  # a monitoring gap, open since the birth
        if together:
            ingest.handle_many(group)
        else:
            for message in group:
                ingest.handle(*message)
        stores.append(store)
    return stores[0], stores[1]


def test_a_run_of_batches_stores_what_its_batches_store_one_by_one(tmp_path: Path) -> None:
    # A replay after a silence, out of measured order (the second batch's heartbeat is the gap's first evidence
    # one by one, not when taken together), with what admission refuses, a resend, and clocks ahead.
    group = _batches(
        [heartbeat(1, T0 + 10 * MINUTE)],
        [heartbeat(2, T0 + MINUTE), _ghost_change(3)],
        [heartbeat(1, T0 + 10 * MINUTE), _ghost_change(3), incident_opened(4, T0 + 2 * MINUTE),
         GapEvent(seq=5, ts=T0, body=GapBody(from_seq=1, to_seq=9, count=3, reason="forged")),
         heartbeat(6, RECEIVED + 10 * MINUTE)],
        [state_change(7, T0 + 3 * MINUTE), heartbeat(8, RECEIVED + 5 * MINUTE)],
    )  # fmt: skip
    alone, together = _alone_and_together(tmp_path, LIVENESS, group, silent_until=T0 + 15 * MINUTE)
    assert _tables(together) == _tables(alone)
    gaps = together.table_rows("gaps")
    assert [(g["start_at"], g["end_at"]) for g in gaps] == [(T0 + 3 * MINUTE + 5_000, T0 + 10 * MINUTE)]
    assert [a.skew_ms for a in together.agents()] == [5 * MINUTE]  # the last batch from the future
    assert {r["seq"] for r in together.table_rows("refused_events")} == {3, 5}


def test_a_run_judges_each_batch_plausible_against_the_ack_before_it(tmp_path: Path) -> None:
    config = LIVENESS.model_copy(update={"max_seq_ahead": 3})
    group = _batches([heartbeat(s, T0 + s) for s in (1, 2, 3)], [heartbeat(s, T0 + s) for s in (4, 5, 6)])
    alone, together = _alone_and_together(tmp_path, config, group)
    assert _tables(together) == _tables(alone)
    assert _events(together, "a1") == [1, 2, 3, 4, 5, 6] and together.dead_letter_total() == 0


# ---------------------------------------------------------------- many agents' runs in one group


class CountingSql:
    """A store's connection that counts the statements sent through it (a bulk insert counts as one)."""

    def __init__(self, sql: Sql) -> None:
        self.sql, self.statements = sql, 0
        self.writing_ctes = sql.writing_ctes

    def values(self, types: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
        return self.sql.values(types, rows)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self.statements += 1
        return self.sql.execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        self.statements += 1
        return self.sql.query(sql, params)

    def tuples(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.statements += 1
        return self.sql.tuples(sql, params)

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.statements += 1
        self.sql.execute_many(sql, rows)

    def for_update(self, skip_locked: bool = False) -> str:
        return self.sql.for_update(skip_locked)

    def insert_new(self, table: str, columns: Sequence[str], key: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.statements += 1
        self.sql.insert_new(table, columns, key, rows)


@pytest.fixture(params=STORES)
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Two fresh stores of one kind: one for message by message, one for the group."""
    opened = [open_store_param(request, tmp_path / name) for name in ("alone", "together")]
    for name in ("alone", "together"):
        (tmp_path / name).mkdir()
    stores = [next(o) for o in opened]
    yield stores[0], stores[1]
    for o in opened:
        next(o, None)


def _many(agent: str, *events: Event, boot: str = "b1") -> tuple[str, bytes, int]:
    return (events_topic(SITE, agent), encode(batch(SITE, agent, list(events), boot=boot)), RECEIVED)


def _many_agents_group() -> list[tuple[str, bytes, int]]:
    """Single-batch runs of many agents, interleaved as a shared subscription hands them to one collector, with
    every case a run's storing has: refusals, resends, a gap to settle, a clock ahead, an implausible seq, an
    incident (stored on its own), two runs of one agent, a restart and a death inside the group, bad JSON."""
    hb = heartbeat
    return [
        _many("a1", hb(1, T0 + 16 * MINUTE), state_change(2, T0 + 16 * MINUTE)),
        _many("a2", hb(1, T0 + 16 * MINUTE), _ghost_change(2)),
        _many("a3", hb(1, T0 + 16 * MINUTE), incident_opened(2, T0 + 16 * MINUTE)),
        _many("a4", hb(1, T0 + MINUTE), hb(2, T0 + 2 * MINUTE), hb(3, T0 + 3 * MINUTE)),  # 1 and 2: resent
        _many("a5", hb(1, RECEIVED + 10 * MINUTE)),  # from the future
        _many("a6", hb(1, T0 + 17 * MINUTE)),
        (events_topic(SITE, "a1"), b"{not json", RECEIVED),
        _many("a7", hb(1, T0 + 17 * MINUTE)),
        (birth_topic(SITE, "a7"), encode(birth(SITE, "a7", boot="b2", ts=T0 + 18 * MINUTE)), RECEIVED),
        _many("a7", hb(2, T0 + 19 * MINUTE), boot="b2"),
        _many("a8", hb(1, T0 + 17 * MINUTE), hb(900, T0 + 17 * MINUTE)),  # 900: implausible
        _many("a1", hb(3, T0 + 17 * MINUTE)),
        _many("a6", hb(2, T0 + 18 * MINUTE)),
        _many("a9", hb(1, T0 + 17 * MINUTE)),
        (death_topic(SITE, "a9"), encode(death(SITE, "a9", ts=T0 + 18 * MINUTE)), RECEIVED),
        *[_many(f"b{n}", hb(1, T0 + 17 * MINUTE), state_change(2, T0 + 17 * MINUTE)) for n in range(6)],
        _many("b0", _ghost_change(3)),  # refused before the group: dropped without a second dead letter
    ]


def test_a_group_of_many_agents_runs_stores_what_its_messages_store_one_by_one(
    two_stores: tuple[Store, Store],
) -> None:
    config = LIVENESS.model_copy(update={"max_seq_ahead": 500})
    agents = [f"a{n}" for n in range(1, 10)]
    for store, grouped in zip(two_stores, (False, True), strict=True):
        ingest = Ingest(store, config, T0)
        for agent in agents:
            ingest.handle(birth_topic(SITE, agent), encode(birth(SITE, agent)), T0)
        ingest.handle(*_many("a4", heartbeat(1, T0 + MINUTE), heartbeat(2, T0 + 2 * MINUTE)))
        assert ingest.check_liveness(T0 + 15 * MINUTE)  # gaps open for the silent ones
        for n in range(6):  # born after the gaps: none to settle
            ingest.handle(birth_topic(SITE, f"b{n}"), encode(birth(SITE, f"b{n}", ts=T0 + 16 * MINUTE)), RECEIVED)
        ingest.handle(*_many("b0", _ghost_change(3)))
        group = _many_agents_group()
        if grouped:  # one ack per run: a1's two runs (split by its bad message) have one each
            outs = ingest.handle_many(group)
            assert [[decode(Ack, p.payload).through for p in out] for out in outs][:7] == [[2], [2], [2], [3], [1],
                                                                                          [], []]  # fmt: skip
        else:
            for message in group:
                ingest.handle(*message)
    alone, together = two_stores
    assert _tables(together) == _tables(alone)
    assert {(r["agent"], r["seq"]) for r in together.table_rows("refused_events")} == {("a2", 2), ("b0", 3)}
    assert together.dead_letter_total() == 4  # a2's change, a1's bad JSON, a8's seq 900, b0's change once
    assert {a.agent: a.skew_flagged for a in together.agents()}["a5"]
    assert [a.boot for a in together.agents() if a.agent == "a7"] == ["b2"]
    assert {(g["agent"], g["end_at"]) for g in together.table_rows("gaps") if g["agent"] == "a6"} == {
        ("a6", T0 + 17 * MINUTE)
    }


def test_a_group_of_single_batch_runs_shares_its_statements(two_stores: tuple[Store, Store]) -> None:
    _, store = two_stores
    ingest = Ingest(store, LIVENESS, T0)
    agents = [f"a{n:02}" for n in range(20)]
    for agent in agents:
        ingest.handle(birth_topic(SITE, agent), encode(birth(SITE, agent)), T0)
    counting = CountingSql(store._sql)  # type: ignore[attr-defined]
    store._sql = counting  # type: ignore[attr-defined]
    outs = ingest.handle_many([_many(a, heartbeat(1, T0 + 1000), heartbeat(2, T0 + 2000)) for a in agents])
    assert [[decode(Ack, p.payload).through for p in out] for out in outs] == [[2]] * 20
    # Per run: its ack row and its agent row, in one statement on PostgreSQL; the known seqs, the insert, the
    # heartbeats, the acks and the gap look-up once for the group (each run on its own took about ten statements).
    per_run = 1 if counting.writing_ctes else 2
    assert counting.statements <= per_run * len(agents) + 10
