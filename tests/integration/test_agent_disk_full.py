"""The agent on a full disk (SQLite's own SQLITE_FULL: the outbox file capped with `max_bytes`), with real
simulators and a real broker: nothing is lost silently, no incident is closed on the wire without its opening,
heartbeats go on, and the collector is told while it lasts."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.outbox import Outbox
from agent.probes.base import ProbeResult
from agent.runtime import Agent
from linewarden.config.agent import AgentConfig
from linewarden.config.load import load
from linewarden.domain import State
from linewarden.errors import StorageFull
from linewarden.wire import (
    Birth,
    Event,
    GapEvent,
    HeartbeatBody,
    HeartbeatEvent,
    IncidentOpenedEvent,
    IncidentResolvedEvent,
    birth_topic,
    decode,
    parse_event,
)
from simulators.broker import Mosquitto
from simulators.mes import MesServer
from tests.ackers import Acker
from tests.integration.agent_helpers import agent_from, agent_toml
from tests.waiting import async_wait_until

pytestmark = pytest.mark.broker

AGENT = "diskfull"
SITE = "plant-e2e"
MAX_BYTES = 65_536


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def capped_toml(tmp_path: Path, port: int, mes: MesServer, **outbox: int) -> Path:
    extra = "".join(f"{k} = {v}\n" for k, v in {"max_bytes": MAX_BYTES, **outbox}.items())
    toml = agent_toml(tmp_path / "data", port, mes=mes, agent_id=AGENT).replace("[outbox]\n", f"[outbox]\n{extra}")
    path = tmp_path / "agent.toml"
    path.write_text(toml)
    return path


def fill_outbox(cfg: AgentConfig) -> int:
    """Fill the agent's outbox to its cap before the agent starts; returns how many events it holds."""
    box = Outbox(cfg.agent.data_dir / "outbox.db", cfg.outbox)
    try:
        for batch in (20, 1):  # to the last byte: not even one more heartbeat fits
            with pytest.raises(StorageFull):
                for _ in range(10_000):
                    box.append_many([("heartbeat", HeartbeatBody(interval_s=1, states={}), wall_ms())] * batch)
        return box.stats().next_seq - 1
    finally:
        box.close()


@pytest.fixture
async def acker(mosquitto: Mosquitto) -> AsyncIterator[Acker]:
    a = Acker(mosquitto.host, mosquitto.port, client_id=f"acker-diskfull-{time.monotonic_ns()}")
    await a.start()
    await async_wait_until(lambda: a.client.connected, what="acker connected")
    yield a
    await a.stop()


def delivered(acker: Acker) -> list[Event]:
    return sorted((e for (agent, _), per in acker.bodies.items() if agent == AGENT for e in per.values()),
                  key=lambda e: e.seq)


def assert_no_orphan_close(events: list[Event]) -> None:
    opened: set[str] = set()
    for e in events:
        if isinstance(e, IncidentOpenedEvent):
            opened.add(e.body.incident)
        if isinstance(e, IncidentResolvedEvent):
            assert e.body.incident in opened, f"incident {e.body.incident} closed on the wire without its opening"


async def test_full_outbox_during_an_outage_keeps_the_incident_and_heartbeats(
    acker: Acker, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    births: list[Birth] = []
    acker.client.subscribe(birth_topic(SITE, AGENT), lambda _t, p: births.append(decode(Birth, p)))
    await acker.pause()  # the collector is away: nothing is acked, so nothing frees space
    async with MesServer("mes") as mes:
        path = capped_toml(tmp_path, mosquitto.port, mes)
        filler = fill_outbox(load(AgentConfig, path))
        async with agent_from(path) as agent:
            slot = agent.slots["mes-health"]
            await async_wait_until(lambda: any(b.outbox_fault for b in births), what="the collector told")
            await async_wait_until(lambda: slot.debouncer.state == State.UP, what="mes-health UP (in memory)")
            await mes.down(None)
            await async_wait_until(lambda: agent.recorder.waiting["incident_opened"] == 1, what="incident opened")
            fault_at = wall_ms()
            await mes.up()
            await async_wait_until(lambda: agent.recorder.waiting["incident_resolved"] == 1, what="resolved")
            await async_wait_until(lambda: agent.recorder.waiting["heartbeat"] >= 3, what="heartbeats go on")
            assert agent.outbox.stats().next_seq == filler + 1, "nothing of it on disk yet"

            await acker.resume()  # acks delete the filler: space returns
            await async_wait_until(
                lambda: any(isinstance(e, IncidentResolvedEvent) for e in delivered(acker)), 20, what="delivered"
            )
            await async_wait_until(lambda: agent.recorder.fault is None, what="fault over")
            await async_wait_until(lambda: births[-1].outbox_fault is None, what="the collector told it is over")
    events = delivered(acker)
    assert [e.seq for e in events] == list(range(1, events[-1].seq + 1)), "no seq lost"
    assert not [e for e in events if e.type == "gap"], "everything was kept in memory"
    assert_no_orphan_close(events)
    assert len([e for e in events if isinstance(e, IncidentOpenedEvent)]) == 1
    assert [e for e in events if isinstance(e, HeartbeatEvent) and e.ts >= fault_at], "heartbeats of the full period"


HOUR_MS = 3_600_000


def test_results_that_cannot_be_kept_roll_back_and_a_gap_says_what_was_lost(tmp_path: Path) -> None:
    """Disk full and the memory buffer (10 events) full too: rounds that cannot be kept roll the state machine
    back, so the incident events that reach the wire always pair up; the gap written when space returns names
    the target, the rounds and the dropped events."""
    path = tmp_path / "agent.toml"
    path.write_text(f"""
[agent]
id = "{AGENT}"
site = "{SITE}"
data_dir = "{tmp_path / 'data'}"

[outbox]
max_bytes = {MAX_BYTES}
memory_buffer_events = 10

[[assets]]
id = "mes-app"
criticality = "critical"

[[targets]]
id = "mes-health"
type = "http"
asset = "mes-app"
url = "http://127.0.0.1:9/health"
""")
    cfg = load(AgentConfig, path)
    filler = fill_outbox(cfg)
    agent = Agent(cfg, path)  # not run: rounds are fed by hand, at chosen times
    now = wall_ms()

    def feed(state: State, n: int) -> None:
        nonlocal now
        for _ in range(n):
            now += 200
            agent.process_round(now, [("mes-health", ProbeResult(state, "" if state == State.UP else "down"))])

    def outage() -> None:
        nonlocal now
        now += HOUR_MS  # far apart: no flapping
        feed(State.DOWN, 3)
        feed(State.UP, 2)

    try:
        feed(State.UP, 2)
        for _ in range(20):
            outage()
            if agent.recorder.unkept_total:
                break
        assert agent.recorder.unkept_total, "the memory buffer filled up"
        outage()
        assert agent.recorder.fault is not None and "not recorded" in agent.recorder.fault
        agent.outbox.mark_sent(filler)  # the collector acks the filler: space returns
        agent.outbox.ack(agent.outbox.epoch, filler)
        agent.recorder.retry()
        assert agent.recorder.fault is None
        outage()
        rows = agent.outbox.pending(filler, 10_000)
    finally:
        agent.outbox.close()
    events = [parse_event({"seq": r.seq, "ts": r.ts, "type": r.type, "body": json.loads(r.body)}) for r in rows]
    [gap] = [e for e in events if isinstance(e, GapEvent)]
    skipped = set(range(gap.body.from_seq, gap.body.to_seq + 1))
    assert sorted({e.seq for e in events} | skipped) == list(range(filler + 1, events[-1].seq + 1)), "no seq lost"
    assert "results of mes-health not recorded" in gap.body.reason
    assert gap.body.count == len(skipped) or (gap.body.count == 0 and len(skipped) == 1)
    assert_no_orphan_close(events)
    opened = {e.body.incident for e in events if isinstance(e, IncidentOpenedEvent)}
    resolved = {e.body.incident for e in events if isinstance(e, IncidentResolvedEvent)}
    assert opened and opened == resolved, "every incident kept is kept whole"


def test_a_real_full_filesystem_holds_the_incident_in_memory_until_space_returns(tmp_path: Path) -> None:
    """The same on a real 4 MB tmpfs filled to the last byte (ENOSPC, which SQLite reports as SQLITE_FULL)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the max_bytes tests cover SQLITE_FULL without it")
    fs = tmp_path / "fs"
    fs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(fs)], check=True)
    try:
        path = tmp_path / "agent.toml"
        path.write_text(f"""
[agent]
id = "{AGENT}"
site = "{SITE}"
data_dir = "{fs / 'data'}"

[[assets]]
id = "mes-app"
criticality = "critical"

[[targets]]
id = "mes-health"
type = "http"
asset = "mes-app"
url = "http://127.0.0.1:9/health"
""")
        agent = Agent(load(AgentConfig, path), path)
        now = wall_ms()

        def feed(state: State, n: int) -> None:
            nonlocal now
            for _ in range(n):
                now += 200
                agent.process_round(now, [("mes-health", ProbeResult(state, "" if state == State.UP else "down"))])

        try:
            feed(State.UP, 2)
            on_disk = agent.outbox.stats().next_seq
            filler = fs / "filler"
            with filler.open("wb") as f, contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            feed(State.DOWN, 3)
            assert agent.recorder.fault is not None and agent.recorder.waiting["incident_opened"] == 1
            assert agent.outbox.stats().next_seq == on_disk, "nothing written to the full filesystem"
            filler.unlink()
            agent.recorder.retry()
            assert agent.recorder.fault is None
            feed(State.UP, 2)
            rows = agent.outbox.pending(0, 1000)
        finally:
            agent.outbox.close()
    finally:
        subprocess.run(["umount", "-l", str(fs)], check=True)
    kinds = [r.type for r in rows if r.type not in ("heartbeat", "metrics")]
    assert kinds == ["state_change", "state_change", "incident_opened", "state_change", "incident_resolved"]
