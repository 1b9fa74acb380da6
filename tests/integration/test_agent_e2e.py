"""The whole agent against real simulators and a real broker: outages become incidents on the wire."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, redirect_stdout
from pathlib import Path

import pytest

from collector import liveness
from collector.ingest import Publication
from collector.service import CollectorService
from collector.store import open_store
from collector.store.rows import AgentRow
from linewarden.cli import main
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load
from linewarden.domain import State
from linewarden.output import iso_time
from linewarden.wire import (
    Event,
    HeartbeatEvent,
    IncidentOpenedEvent,
    IncidentResolvedEvent,
    StateChangeEvent,
    ack_topic,
)
from simulators.broker import Mosquitto
from simulators.mes import MesServer
from simulators.modbus_plc import ModbusPlc
from simulators.opcua_plc import OpcUaPlc
from tests.ackers import Acker
from tests.integration.agent_helpers import FAIL_THRESHOLD, INTERVAL_S, agent_toml, hung_poll_times, running_agent
from tests.waiting import async_wait_until

pytestmark = pytest.mark.broker

# Detection takes fail_threshold × interval + about 1 s (bench/ticket_latency.py measures it); a test waits far
# longer before it calls an incident lost rather than late: a busy 2-core box running the suite's workers and
# a CPU-bound job beside them stretches every poll.
DETECTION_BOUND_S = FAIL_THRESHOLD * INTERVAL_S + 1.0
WAIT_S = DETECTION_BOUND_S + 25.0


def _all(acker: Acker) -> list[Event]:
    return [e for per_key in acker.bodies.values() for e in per_key.values()]


def _changes(acker: Acker) -> list[StateChangeEvent]:
    return [e for e in _all(acker) if isinstance(e, StateChangeEvent)]


def _opened(acker: Acker) -> list[IncidentOpenedEvent]:
    return [e for e in _all(acker) if isinstance(e, IncidentOpenedEvent)]


def _resolved(acker: Acker) -> list[IncidentResolvedEvent]:
    return [e for e in _all(acker) if isinstance(e, IncidentResolvedEvent)]


def _incident(acker: Acker, target: str) -> IncidentOpenedEvent | None:
    return next((e for e in _opened(acker) if e.body.target == target or target in e.body.targets), None)


async def _opened_for(acker: Acker, target: str) -> IncidentOpenedEvent:
    await async_wait_until(lambda: _incident(acker, target) is not None, WAIT_S, what=f"incident for {target}")
    found = _incident(acker, target)
    assert found is not None
    return found


@pytest.fixture
async def acker(mosquitto: Mosquitto) -> AsyncIterator[Acker]:
    a = Acker(mosquitto.host, mosquitto.port, client_id=f"acker-{os.getpid()}-{time.monotonic_ns()}")
    await a.start()
    await async_wait_until(lambda: a.client.connected, 10, what="acker connected")
    yield a
    await a.stop()


Fault = Callable[[], Awaitable[None]]


async def _outage_and_recovery(
    acker: Acker, tmp_path: Path, toml: str, target: str, inject: Fault, clear: Fault
) -> None:
    async with running_agent(tmp_path, toml):
        await async_wait_until(
            lambda: any(e.body.target == target and e.body.to == "UP" for e in _changes(acker)),
            WAIT_S,
            what=f"{target} UP",
        )
        fault_at_ms = time.time_ns() // 1_000_000
        await inject()
        opened = await _opened_for(acker, target)
        change = next(e for e in _changes(acker) if e.body.target == target and e.body.from_ == "UP")
        # Dated at the first failing probe: not before the fault, and before the run that confirmed it ended.
        # (How soon after the fault is measured by bench/ticket_latency.py, not asserted here; the wait above
        # bounds it only to tell a lost incident from a late one.)
        assert fault_at_ms - 50 <= change.body.at < opened.ts
        assert opened.body.opened_at == change.body.at
        await clear()
        await async_wait_until(
            lambda: any(e.body.incident == opened.body.incident for e in _resolved(acker)),
            WAIT_S,
            what=f"{target} incident resolved",
        )
        resolved = next(e for e in _resolved(acker) if e.body.incident == opened.body.incident)
        assert resolved.body.at >= change.body.at


async def test_opcua_outage(acker: Acker, mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with OpcUaPlc("plc1", heartbeat_period=0.1) as plc:
        toml = agent_toml(tmp_path / "data", mosquitto.port, opcua=plc)
        await _outage_and_recovery(
            acker, tmp_path, toml, "plc-1-opcua", lambda: plc.down(None), plc.up
        )


async def test_modbus_outage_and_stop_flag(acker: Acker, mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with ModbusPlc("gw", heartbeat_period=0.1) as plc:
        toml = agent_toml(tmp_path / "data", mosquitto.port, modbus=plc)

        async def stop() -> None:
            await plc.exception(4, unit=1)

        await _outage_and_recovery(acker, tmp_path, toml, "plc-2-modbus", stop, plc.clear)


async def test_http_outage(acker: Acker, mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with MesServer("mes") as mes:
        toml = agent_toml(tmp_path / "data", mosquitto.port, mes=mes)
        await _outage_and_recovery(acker, tmp_path, toml, "mes-health", lambda: mes.down(None), mes.up)


async def test_tcp_outage(acker: Acker, mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with MesServer("mes") as mes:
        toml = agent_toml(tmp_path / "data", mosquitto.port, tcp_port=mes.port)
        await _outage_and_recovery(acker, tmp_path, toml, "mes-port", lambda: mes.down(None), mes.up)


async def test_process_outage(acker: Acker, mosquitto: Mosquitto, tmp_path: Path) -> None:
    marker = f"lw-e2e-mes-{os.getpid()}-{time.monotonic_ns()}"
    script = f"import time  # {marker}\nwhile True: time.sleep(1)\n"
    procs: list[subprocess.Popen[bytes]] = [subprocess.Popen([sys.executable, "-c", script])]

    async def kill() -> None:
        procs[-1].kill()
        procs[-1].wait()

    async def restart() -> None:
        procs.append(subprocess.Popen([sys.executable, "-c", script]))

    try:
        toml = agent_toml(tmp_path / "data", mosquitto.port, process_name=marker)
        await _outage_and_recovery(acker, tmp_path, toml, "mes-process", kill, restart)
    finally:
        for p in procs:
            p.kill()
            p.wait()


async def test_file_age_outage(acker: Acker, mosquitto: Mosquitto, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    stop_touching = asyncio.Event()

    async def keep_fresh() -> None:
        while not stop_touching.is_set():
            (backups / "nightly.bak").write_bytes(b"backup")
            await asyncio.sleep(0.1)

    toucher = asyncio.create_task(keep_fresh())

    async def stop_backups() -> None:
        stop_touching.set()
        await toucher

    async def resume_backups() -> None:
        (backups / "nightly.bak").write_bytes(b"fresh backup")

    toml = agent_toml(tmp_path / "data", mosquitto.port, backup_glob=f"{backups}/*.bak")
    await _outage_and_recovery(acker, tmp_path, toml, "backup", stop_backups, resume_backups)


async def test_agent_survives_broker_down_at_start(own_mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with MesServer("mes") as mes:
        toml = agent_toml(tmp_path / "data", own_mosquitto.port, mes=mes)
        async with running_agent(tmp_path, toml) as agent:
            await async_wait_until(lambda: agent.outbox.stats().depth > 0, WAIT_S, what="events kept while no broker")
            own_mosquitto.start()
            acker = Acker(own_mosquitto.host, own_mosquitto.port, client_id="late-acker")
            await acker.start()
            try:
                await async_wait_until(
                    lambda: any(e.body.target == "mes-health" for e in _changes(acker)),
                    20,
                    what="state change delivered after the broker came up",
                )
                await async_wait_until(lambda: agent.outbox.stats().last_ack_seq > 0, 20, what="acked")
            finally:
                await acker.stop()


def _run_agent_process(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "linewarden.cli", "agent", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_kill_9_mid_forwarding_loses_and_duplicates_nothing(
    acker: Acker, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with MesServer("mes") as mes, ModbusPlc("gw", heartbeat_period=0.1) as plc:
        config = tmp_path / "agent.toml"
        config.write_text(
            agent_toml(tmp_path / "data", mosquitto.port, mes=mes, modbus=plc, agent_id="kill9", heartbeat="1s")
        )
        proc = _run_agent_process(config)
        try:
            await async_wait_until(lambda: acker.total() > 0, 20, what="first events")
            await mes.down(None)  # an outage while the agent forwards: state changes and an incident in flight
            opened_before_kill = await _opened_for(acker, "mes-health")
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            await mes.up()
            proc = _run_agent_process(config)
            incident_id = opened_before_kill.body.incident
            await async_wait_until(
                lambda: any(e.body.incident == incident_id for e in _resolved(acker)),
                20,
                what="the same incident resolved by the restarted agent",
            )
        finally:
            proc.terminate()
            proc.wait(15)
    keys = [k for k in acker.bodies if k[0] == "kill9"]
    assert len(keys) == 1, "one epoch: the outbox survived the kill"
    seqs = sorted(acker.bodies[keys[0]])
    assert seqs == list(range(1, seqs[-1] + 1)), "no seq lost"
    opened = [e for e in _opened(acker) if e.body.target == "mes-health"]
    assert len(opened) == 1, "the restart did not open the incident a second time"


@asynccontextmanager
async def never_answering_http() -> AsyncIterator[tuple[str, list[asyncio.StreamWriter]]]:
    """A server that accepts and never answers, and the agent TOML of an HTTP target polling it (timeout 30 s);
    the list holds one writer per connection it took."""
    hung: list[asyncio.StreamWriter] = []

    async def never_answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    target = f"""
[[targets]]
id = "hung-mes"
type = "http"
asset = "mes-app"
url = "http://127.0.0.1:{port}/health"
timeout = "30s"
"""
    try:
        yield target, hung
    finally:
        for writer in hung:
            writer.close()
        server.close()


async def test_a_hanging_target_delays_only_itself(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """A server that accepts and never answers keeps its poll open for 30 s; the Modbus target of the same
    interval goes on being polled every tick meanwhile."""
    async with never_answering_http() as (target, hung), ModbusPlc("gw", heartbeat_period=0.1) as plc:
        toml = agent_toml(tmp_path / "data", mosquitto.port, modbus=plc) + target
        async with running_agent(tmp_path, toml) as agent:
            await async_wait_until(lambda: hung, 10, what="the hanging poll under way")
            modbus = agent.slots["plc-2-modbus"]
            start = modbus.last_at_ms or 0
            seen: set[int] = set()

            def polled_on() -> bool:
                if modbus.last_at_ms is not None and modbus.last_at_ms > start:
                    seen.add(modbus.last_at_ms)
                return len(seen) >= 5

            await async_wait_until(polled_on, 10, interval=0.02, what="five Modbus polls during the hang")
            assert agent.slots["hung-mes"].last is None, "the hanging poll is still open"


async def test_a_poll_past_its_budget_is_unknown_and_polled_again(
    mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The poll loop ends a poll that outlives its budget with UNKNOWN (`probe.hung`), starts the target's next
    poll at a later tick, and keeps polling the other targets; stopping the agent cancels a poll under way."""
    from agent.probes.http import HttpProbe

    monkeypatch.setattr(HttpProbe, "poll_budget", lambda self: 0.3)
    async with never_answering_http() as (target, hung), ModbusPlc("gw", heartbeat_period=0.1) as plc:
        toml = agent_toml(tmp_path / "data", mosquitto.port, modbus=plc) + target
        async with running_agent(tmp_path, toml) as agent:
            slot = agent.slots["hung-mes"]
            results: set[int] = set()

            def hung_twice() -> bool:
                return len(hung_poll_times(slot, 0.3, results)) >= 2 and len(hung) >= 2

            await async_wait_until(hung_twice, 15, interval=0.02, what="two polls ended by their budget")
            assert agent.slots["plc-2-modbus"].last is not None
            assert agent.slots["plc-2-modbus"].last.state == State.UP


async def test_everything_down_at_once_is_one_site_link_incident(
    acker: Acker, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """The network, not the vendors: when every target turns DOWN together, one `site_link` incident."""
    async with MesServer("mes") as mes, ModbusPlc("gw", heartbeat_period=0.1) as plc:
        toml = agent_toml(tmp_path / "data", mosquitto.port, mes=mes, modbus=plc, agent_id="sitelink")
        # "Together" is within a failing run: 10 polls (2 s) rather than 3, so that on a busy box the MES's
        # refused connections cannot reach DOWN before the PLC's first poll after its port closed has failed.
        toml = toml.replace(f"fail_threshold = {FAIL_THRESHOLD}", "fail_threshold = 10", 1)
        async with running_agent(tmp_path, toml):
            await async_wait_until(
                lambda: len({e.body.target for e in _changes(acker) if e.body.to == "UP"}) == 2,
                WAIT_S,
                what="both targets UP",
            )
            await mes.down(None)
            await plc.stop_listening()
            opened = await async_wait_until(
                lambda: [e for e in _opened(acker) if e.body.kind == "site_link"],
                WAIT_S,
                what="a site_link incident",
            )
            assert sorted(opened[0].body.targets) == ["mes-health", "plc-2-modbus"]
            assert not [e for e in _opened(acker) if e.body.kind == "target"], "not one per target"
            await mes.up()
            await plc.start_listening()
            await async_wait_until(
                lambda: any(e.body.incident == opened[0].body.incident for e in _resolved(acker)),
                WAIT_S + 10,
                what="the site link incident resolved",
            )


async def test_outbox_figures_reach_the_collector_while_its_acks_are_held(
    mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real agent and collector; the collector stores everything but its acks are held back, so the agent's
    outbox grows and its heartbeats say so: the store, `collector agents` and /metrics show the depth and the
    age of the oldest unacknowledged event, and once acks flow again the backlog is gone."""
    config_path = tmp_path / "collector.toml"
    config_path.write_text(f'[collector]\ndata_dir = "{tmp_path / "c"}"\n[broker]\nhost = "127.0.0.1"\n'
                           f"port = {mosquitto.port}\n[console]\nenabled = false\n")
    store = open_store(load(CollectorConfig, config_path))
    svc = CollectorService(load(CollectorConfig, config_path), store)
    held = asyncio.Event()
    our_acks = ack_topic("plant-e2e", "obx-agent")
    publish = svc._publish

    def holding(publications: list[Publication]) -> None:
        publish([p for p in publications if not (held.is_set() and p.topic == our_acks)])

    monkeypatch.setattr(svc, "_publish", holding)

    def row() -> AgentRow | None:
        return next((a for a in store.agents() if a.agent == "obx-agent"), None)

    await svc.start()
    try:
        async with MesServer("mes") as mes:
            toml = agent_toml(tmp_path / "data", mosquitto.port, mes=mes, agent_id="obx-agent", heartbeat="1s")
            async with running_agent(tmp_path, toml) as agent:
                await async_wait_until(lambda: (r := row()) is not None and r.outbox_depth is not None, WAIT_S,
                                       what="a heartbeat with outbox figures stored")  # fmt: skip
                held.set()

                def backlog_reported() -> bool:
                    r = row()
                    age = None if r is None else liveness.oldest_unacked_age_ms(r)
                    oldest_now = agent.outbox.stats().oldest_ts
                    return r is not None and r.oldest_unacked_at == oldest_now and age is not None and age >= 2000

                await async_wait_until(backlog_reported, WAIT_S, what="two seconds of backlog reported")
                reported, oldest = row(), agent.outbox.stats().oldest_ts
                assert reported is not None and reported.outbox_depth is not None and oldest is not None
                assert 0 < reported.outbox_depth <= agent.outbox.stats().depth  # as of the heartbeat: no more since
                out = io.StringIO()
                with redirect_stdout(out):
                    assert main(["collector", "agents", "--config", str(config_path), "--format", "json"]) == 0
                [shown] = [a for a in json.loads(out.getvalue()) if a["agent"] == "obx-agent"]
                assert shown["outbox_depth"] > 0 and shown["oldest_unacked_age_s"] >= 2
                assert shown["oldest_unacked_at"] == iso_time(reported.oldest_unacked_at)
                gauges = dict(line.rsplit(" ", 1) for line in svc.metrics.exposition().decode().splitlines()
                              if line.startswith("linewarden_agent_reported_outbox"))  # fmt: skip
                labels = '{agent="obx-agent",site="plant-e2e"}'
                assert float(gauges[f"linewarden_agent_reported_outbox_depth{labels}"]) > 0
                assert float(gauges[f"linewarden_agent_reported_outbox_oldest_age_seconds{labels}"]) >= 2

                held.clear()
                await async_wait_until(
                    lambda: (r := row()) is not None and (r.oldest_unacked_at or oldest + 1) > oldest, WAIT_S,
                    what="the backlog acknowledged and a heartbeat saying so",
                )  # fmt: skip
    finally:
        await svc.stop()
        store.close()


async def test_outbox_figures_left_out_for_a_collector_older_than_them(
    acker: Acker, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with MesServer("mes") as mes:
        toml = agent_toml(tmp_path / "data", mosquitto.port, mes=mes, agent_id="obx-off", heartbeat="1s")
        toml = toml.replace('heartbeat_interval = "1s"', 'heartbeat_interval = "1s"\noutbox_figures = false', 1)
        async with running_agent(tmp_path, toml):

            def beats() -> list[HeartbeatEvent]:
                return [e for (agent, _), per_seq in acker.bodies.items() if agent == "obx-off"
                        for e in per_seq.values() if isinstance(e, HeartbeatEvent)]  # fmt: skip

            await async_wait_until(lambda: len(beats()) >= 2, WAIT_S, what="two heartbeats")
    assert all(b.body.outbox_depth is None and b.body.oldest_unacked_at is None for b in beats())
