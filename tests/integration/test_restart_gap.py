"""An agent restart always leaves a monitoring gap from the old boot's last event to the new boot's birth,
however quick the restart (real wire payloads through the collector's ingest, real SQLite)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from collector.ingest import Ingest
from collector.liveness import REASON_RESTARTED
from collector.store.sqlite import SqliteStore
from linewarden.config.collector import LivenessConfig
from linewarden.domain import State
from linewarden.wire import HeartbeatEvent, birth_topic, death_topic, encode, events_topic
from tests.integration.collector_helpers import T0, batch, birth, death, heartbeat, state_change

SITE, AGENT = "plant-a", "a1"
S = 1000
BIRTH2 = T0 + 25 * S  # the new boot's birth, well within three heartbeats (3 × 60 s) of the last one


@pytest.fixture
def store(tmp_path: Path):
    s = SqliteStore(tmp_path / "collector.db")
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def ingest(store: SqliteStore) -> Ingest:
    return Ingest(store, LivenessConfig(missed_heartbeats=3, clock_skew_threshold=timedelta(seconds=30)), T0)


def _old_boot(ingest: Ingest) -> None:
    """Boot b1: born at T0, a heartbeat at T0 + 1 s, a state change measured at T0 + 15 s (its last event)."""
    ingest.handle(birth_topic(SITE, AGENT), encode(birth(SITE, AGENT)), T0)
    events = [heartbeat(1, T0 + S), state_change(2, T0 + 10 * S, to=State.DOWN)]  # ts = at + 5 s
    ingest.handle(events_topic(SITE, AGENT), encode(batch(SITE, AGENT, events)), T0 + 16 * S)


def _new_boot(ingest: Ingest, replayed: list[HeartbeatEvent], boot_seq: int | None = None) -> None:
    """Boot b2: its birth, then a batch of what it replays and its own first heartbeat, measured 4 ms
    before its birth (the agent polls before its broker connection is up)."""
    ingest.handle(birth_topic(SITE, AGENT), encode(birth(SITE, AGENT, boot="b2", ts=BIRTH2, boot_seq=boot_seq)), BIRTH2)
    own = heartbeat(3 + len(replayed), BIRTH2 - 4)
    ingest.handle(events_topic(SITE, AGENT), encode(batch(SITE, AGENT, [*replayed, own], boot="b2")), BIRTH2 + 5)


def _gap(store: SqliteStore) -> tuple[int, int | None, str]:
    [gap] = store.gaps(T0, T0 + 10**9)
    return gap.start_at, gap.end_at, gap.reason


def test_quick_restart_leaves_the_gap_from_the_last_event_to_the_birth(ingest: Ingest, store: SqliteStore) -> None:
    _old_boot(ingest)
    _new_boot(ingest, [], boot_seq=3)
    assert _gap(store) == (T0 + 15 * S, BIRTH2, REASON_RESTARTED)


def test_events_the_new_boot_replays_for_the_old_one_still_count(ingest: Ingest, store: SqliteStore) -> None:
    _old_boot(ingest)
    replayed = [heartbeat(3, T0 + 20 * S)]  # measured by b1, never delivered before the restart
    _new_boot(ingest, replayed, boot_seq=4)
    assert _gap(store) == (T0 + 20 * S, BIRTH2, REASON_RESTARTED)


def test_a_birth_without_boot_seq_lets_only_the_old_boots_own_batches_count(ingest: Ingest, store: SqliteStore) -> None:
    _old_boot(ingest)
    _new_boot(ingest, [heartbeat(3, T0 + 20 * S)])
    assert _gap(store) == (T0 + 15 * S, BIRTH2, REASON_RESTARTED)


def test_clean_stop_and_quick_start_also_leave_the_gap(ingest: Ingest, store: SqliteStore) -> None:
    _old_boot(ingest)
    ingest.handle(death_topic(SITE, AGENT), encode(death(SITE, AGENT, ts=T0 + 16 * S)), T0 + 16 * S)
    _new_boot(ingest, [], boot_seq=3)
    start, end, reason = _gap(store)
    assert (start, end) == (T0 + 15 * S, BIRTH2) and reason.startswith("agent stopped")
