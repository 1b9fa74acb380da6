"""The whole system: an agent probing simulators, Mosquitto, the collector with a contract and a webhook vendor.

An MES outage of a measured length must come out of the collector's SLA report as that much downtime, also
when the collector was down during the outage and the agent's outbox replays it later, and it must raise one
vendor ticket.

Why downtime ≈ outage within one poll interval: the agent dates a state change at the first probe of the run
that confirmed it (docs/figures.md), not at the confirming probe. The DOWN change is dated at the first round after
the MES stopped listening, so in [down, down + interval]; the UP change likewise in [up, up + interval]. Their
difference is the outage ± one interval; 0.3 s more covers a round that starts late on a busy 2-core box.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.runtime import Agent
from collector.reporting import reports
from collector.service import CollectorService
from collector.store.sqlite import SqliteStore
from linewarden.config.agent import AgentConfig
from linewarden.config.load import load
from linewarden.domain import State
from linewarden.sla.report import ContractReport
from linewarden.sla.results import UptimeLine
from simulators.broker import Mosquitto
from simulators.mes import MesServer
from simulators.modbus_plc import ModbusPlc
from tests.fakes.webhook import FakeWebhookReceiver
from tests.integration.agent_helpers import INTERVAL_S, agent_toml
from tests.integration.ticketing_helpers import (
    FAST,
    SECRET,
    SECRET_ENV,
    book,
    collector_config,
    contract,
    sink_config,
)
from tests.waiting import async_wait_until

pytestmark = pytest.mark.broker

CONTRACT = "mes-e2e-2026"
MES_ASSET, MES_TARGET = "mes-app", "mes-health"
PLC_ASSET = "plc-2"
OUTAGE_S = 3.5
SLACK_MS = 300
WAIT_S = 20.0
TOLERANCE_MS = int(INTERVAL_S * 1000) + SLACK_MS


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Outage:
    down_ms: int  # just before the MES stopped listening
    up_ms: int  # just before it listened again

    @property
    def length_ms(self) -> int:
        return self.up_ms - self.down_ms


class System:
    """Simulators, the agent and the collector, all on this event loop; the collector can be stopped and restarted."""

    def __init__(self, mosquitto: Mosquitto, tmp: Path, mes: MesServer, hook: FakeWebhookReceiver) -> None:
        self.mosquitto = mosquitto
        self.mes = mes
        self.hook = hook
        self.db = tmp / "collector" / "collector.db"
        self.db.parent.mkdir()
        self.book = book(
            contract(
                CONTRACT,
                "acme",
                [MES_ASSET, PLC_ASSET],
                sink_config("webhook", hook.url),
                uptime=[{"scope": MES_ASSET, "target_pct": 99.9}, {"scope": PLC_ASSET, "target_pct": 99.9}],
            )
        )
        self.collector: CollectorService | None = None
        self.agent: Agent | None = None
        self._starts = 0

    async def start_collector(self) -> CollectorService:
        store = SqliteStore(self.db)
        store.migrate()
        self._starts += 1
        config = collector_config(self.mosquitto.host, self.mosquitto.port, self.db.parent, f"e2e-sys-{self._starts}")
        svc = CollectorService(config, store, book=self.book, dispatch_policy=FAST, ticket_poll_s=0.05)
        await svc.start()
        await async_wait_until(lambda: svc.mqtt.connected, WAIT_S, what="collector connected")
        self.collector = svc
        return svc

    async def stop_collector(self) -> None:
        assert self.collector is not None
        await self.collector.stop()
        self.collector.store.close()
        self.collector = None

    @property
    def store(self) -> SqliteStore:
        assert self.collector is not None and isinstance(self.collector.store, SqliteStore)
        return self.collector.store

    async def outage(self) -> Outage:
        down_ms = now_ms()
        await self.mes.down(None)
        await asyncio.sleep(OUTAGE_S)  # the scenario: how long the MES stays down, not a wait for a condition
        up_ms = now_ms()
        await self.mes.up()
        return Outage(down_ms, up_ms)

    def mes_changes(self, to_state: str) -> list[int]:
        return [
            c.at for c in self.store.state_changes(0, now_ms() + 1) if c.target == MES_TARGET and c.to_state == to_state
        ]

    def resolved_incidents(self) -> list[str]:
        return [
            i.id for i in self.store.incidents(0, now_ms() + 1) if i.target == MES_TARGET and i.resolved_at is not None
        ]

    def report(self) -> ContractReport:
        as_of = now_ms()
        month = datetime.fromtimestamp(as_of / 1000, ZoneInfo("Europe/Berlin")).strftime("%Y-%m")
        (report,) = reports(self.store, self.book, month, CONTRACT, as_of_ms=as_of)
        return report


def line(report: ContractReport, scope: str) -> UptimeLine:
    return next(u for u in report.uptime if u.scope == scope)


@pytest.fixture
async def system(mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[System]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    hook = FakeWebhookReceiver(SECRET).start()
    try:
        async with MesServer("mes") as mes, ModbusPlc("gw", heartbeat_period=0.1) as plc:
            sys_ = System(mosquitto, tmp_path, mes, hook)
            await sys_.start_collector()
            path = tmp_path / "agent.toml"
            agent_id = f"sys-{time.monotonic_ns()}"
            path.write_text(agent_toml(tmp_path / "agent", mosquitto.port, mes=mes, modbus=plc, agent_id=agent_id))
            agent = sys_.agent = Agent(load(AgentConfig, path), path)
            task = asyncio.create_task(agent.run())
            try:
                await async_wait_until(lambda: sys_.mes_changes("UP"), WAIT_S, what="MES seen UP by the collector")
                yield sys_
            finally:
                await agent.stop()
                await asyncio.wait_for(task, 15)
                if sys_.collector is not None:
                    await sys_.stop_collector()
    finally:
        hook.stop()


async def test_an_outage_is_scored_as_measured_and_ticketed_once(system: System) -> None:
    outage = await system.outage()
    (incident,) = await async_wait_until(system.resolved_incidents, WAIT_S, what="MES incident resolved")
    await async_wait_until(lambda: incident in system.hook.tickets, WAIT_S, what="vendor ticket")
    await async_wait_until(
        lambda: system.collector and system.collector.dispatcher.ticket(incident, CONTRACT),
        WAIT_S,
        what="ticket recorded",
    )

    report = system.report()
    mes = line(report, MES_ASSET)
    assert abs(mes.measure.down_ms - outage.length_ms) <= TOLERANCE_MS, (mes.measure.down_ms, outage.length_ms)
    assert mes.measure.downtime_ms == mes.measure.down_ms
    assert line(report, PLC_ASSET).measure.down_ms == 0, "the PLC stayed up"
    (scored,) = [i for i in report.incidents if i.id == incident]
    assert outage.down_ms - SLACK_MS <= scored.opened_ms <= outage.down_ms + TOLERANCE_MS
    assert scored.notified_ms is not None and scored.notified_ms >= scored.opened_ms

    assert list(system.hook.tickets) == [incident], "one vendor ticket, for this incident"
    events = [e["event"] for e in system.hook.tickets[incident]["events"]]
    assert events.count("ticket.created") == 1


async def test_an_outage_while_the_collector_is_down_is_replayed_and_scored_when_measured(system: System) -> None:
    await system.stop_collector()
    outage = await system.outage()
    assert system.agent is not None
    slot = system.agent.slots[MES_TARGET]
    await async_wait_until(lambda: slot.debouncer.state == State.UP, WAIT_S, what="agent saw the MES back UP")
    restarted_ms = now_ms()
    svc = await system.start_collector()
    (incident,) = await async_wait_until(system.resolved_incidents, WAIT_S, what="replayed incident resolved")

    (opened,) = [e for e in system.store.table_rows("events") if e["type"] == "incident_opened"]
    assert opened["ts"] < restarted_ms <= opened["received_at"], "emitted while the collector was down, replayed"
    (down_at,) = system.mes_changes("DOWN")
    assert outage.down_ms - SLACK_MS <= down_at <= outage.up_ms, "dated when measured, not when replayed"

    report = system.report()
    mes = line(report, MES_ASSET)
    assert abs(mes.measure.down_ms - outage.length_ms) <= TOLERANCE_MS, (mes.measure.down_ms, outage.length_ms)
    (scored,) = [i for i in report.incidents if i.id == incident]
    assert scored.opened_ms < restarted_ms
    assert scored.restored_ms is not None and scored.restored_ms < restarted_ms

    await async_wait_until(lambda: svc.dispatcher.ticket(incident, CONTRACT), WAIT_S, what="ticket after replay")
    assert list(system.hook.tickets) == [incident]
