"""The agent's long-running tasks under supervision, with a real broker and simulator: a crash is restarted
and counted while heartbeats go on; crashes that keep coming end `linewarden agent run` with exit code 1."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import agent.runtime
from agent.cli import EXIT_RUNTIME, main
from agent.metrics import MetricsAggregator
from agent.runtime import Agent
from linewarden.config.agent import AgentConfig
from linewarden.config.load import load
from linewarden.supervise import RestartPolicy
from linewarden.wire import HeartbeatEvent, MetricsBody
from simulators.broker import Mosquitto
from simulators.mes import MesServer
from tests.ackers import Acker
from tests.integration.agent_helpers import agent_toml
from tests.waiting import async_wait_until

pytestmark = pytest.mark.broker


@pytest.fixture
async def acker(mosquitto: Mosquitto) -> AsyncIterator[Acker]:
    a = Acker(mosquitto.host, mosquitto.port, client_id=f"acker-supervision-{time.monotonic_ns()}")
    await a.start()
    await async_wait_until(lambda: a.client.connected, what="acker connected")
    yield a
    await a.stop()


def heartbeats_after(acker: Acker, agent_id: str, after_ms: int) -> list[HeartbeatEvent]:
    return [
        e for (a, _), per in acker.bodies.items() if a == agent_id
        for e in per.values() if isinstance(e, HeartbeatEvent) and e.ts > after_ms
    ]


async def test_a_crashed_housekeeping_task_is_restarted_and_heartbeats_go_on(
    acker: Acker, mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with MesServer("mes") as mes:
        path = tmp_path / "agent.toml"
        path.write_text(agent_toml(tmp_path / "data", mosquitto.port, mes=mes, agent_id="supervised"))
        agent = Agent(load(AgentConfig, path), path)
        crashed_at: list[int] = []
        real_flush = agent._metrics.flush

        def flush_crashing_once(now_ms: int) -> list[MetricsBody]:
            if not crashed_at:
                crashed_at.append(now_ms)
                raise RuntimeError("injected housekeeping fault")
            return real_flush(now_ms)

        monkeypatch.setattr(agent._metrics, "flush", flush_crashing_once)
        task = asyncio.create_task(agent.run())
        try:
            await async_wait_until(lambda: crashed_at, what="the injected crash")
            await async_wait_until(
                lambda: heartbeats_after(acker, "supervised", crashed_at[0]), what="heartbeats after the crash"
            )
            assert agent.supervisor.crashes["housekeeping"] == 1
            await async_wait_until(
                lambda: (agent.outbox.get_state("health") or {}).get("task_crashes") == {"housekeeping": 1},
                what="the crash saved for `agent status`",
            )
            capsys.readouterr()
            assert main(["status", "--config", str(path), "--format", "json"]) == 0
            assert json.loads(capsys.readouterr().out)["summary"]["task_crashes"] == 1
        finally:
            await agent.stop()
            await asyncio.wait_for(task, 15)


def test_repeated_crashes_exit_the_agent_with_code_1(
    mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def always_crash(self: MetricsAggregator, now_ms: int) -> list[MetricsBody]:
        raise RuntimeError("injected housekeeping fault")

    monkeypatch.setattr(MetricsAggregator, "flush", always_crash)
    fast = RestartPolicy(first_wait_s=0.01, max_wait_s=0.05, max_crashes=3, window_s=600)
    monkeypatch.setattr(agent.runtime, "RESTART_POLICY", fast, raising=False)
    path = tmp_path / "agent.toml"
    path.write_text(agent_toml(tmp_path / "data", mosquitto.port, tcp_port=9, agent_id="crashing"))
    assert main(["run", "--config", str(path)]) == EXIT_RUNTIME
