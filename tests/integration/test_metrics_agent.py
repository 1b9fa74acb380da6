"""The agent's opt-in /metrics on loopback, scraped from a running agent polling real sockets."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from agent.runtime import Agent
from linewarden.config.agent import AgentConfig
from linewarden.config.load import load
from tests.integration.agent_helpers import agent_toml
from tests.integration.test_metrics_collector import scrape
from tests.waiting import async_wait_until

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_agent_metrics_move_with_its_polls_and_outbox(own_mosquitto, tmp_path: Path) -> None:
    # A broker of its own: the session's holds whatever collector state other tests' collectors left retained.
    mosquitto = own_mosquitto
    mosquitto.start()
    closed = _free_port()
    toml = agent_toml(tmp_path / "data", mosquitto.port, tcp_port=mosquitto.port, agent_id="metrics-agent")
    toml = toml.replace("[broker]", f"metrics_port = {_free_port()}\n\n[broker]", 1)
    toml += f"""
[[targets]]
id = "plc-port"
type = "tcp"
asset = "plc-1"
host = "127.0.0.1"
port = {closed}
"""
    path = tmp_path / "agent.toml"
    path.write_text(toml)
    agent = Agent(load(AgentConfig, path), path)
    task = asyncio.create_task(agent.run())
    try:
        await async_wait_until(lambda: agent.metrics_port is not None, what="metrics served")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{agent.metrics_port}") as http:

            async def figures() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
                return scrape((await http.get("/metrics")).text)

            async def polled() -> bool:
                f = await figures()
                return f.get(("linewarden_agent_poll_failures_total", (("kind", "tcp"),)), 0) >= 3 and f.get(
                    ("linewarden_agent_broker_connected", ())
                ) == 1

            await async_wait_until(polled, what="polls counted, broker connected")
            first = await figures()
            tcp_kind = (("kind", "tcp"),)

            async def moved() -> bool:  # nobody acknowledges: the outbox only grows while polls go on
                f = await figures()
                return (
                    f[("linewarden_agent_outbox_depth", ())] > first[("linewarden_agent_outbox_depth", ())]
                    and f[("linewarden_agent_polls_total", tcp_kind)]
                    > first[("linewarden_agent_polls_total", tcp_kind)]
                )

            await async_wait_until(moved, what="more polls and more events in the outbox")
            later = await figures()
            assert (await http.get("/other")).status_code == 404
        tcp = (("kind", "tcp"),)
        assert later[("linewarden_agent_polls_total", tcp)] > first[("linewarden_agent_polls_total", tcp)]
        assert later[("linewarden_agent_polls_total", tcp)] > later[("linewarden_agent_poll_failures_total", tcp)]
        assert later[("linewarden_agent_probe_latency_seconds_count", tcp)] >= 1
        assert later[("linewarden_agent_outbox_depth", ())] > first[("linewarden_agent_outbox_depth", ())]
        assert later[("linewarden_agent_outbox_oldest_unacked_age_seconds", ())] > 0
        assert later[("linewarden_agent_collector_online", ())] == -1  # no collector state seen
        assert later[("linewarden_agent_broker_reconnects_total", ())] == 0
    finally:
        await agent.stop()
        await asyncio.wait_for(task, 15)


def test_an_agent_without_metrics_port_never_loads_prometheus_client() -> None:
    code = (
        "import sys, agent.cli, agent.runtime, agent.forwarder\n"
        "assert 'prometheus_client' not in sys.modules, 'loaded'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
