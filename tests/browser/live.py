"""Publishing as an agent would: a birth and one state change, one minute's probe figures, or a heartbeat with
its outbox figures, over the real broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from linewarden.config.base import BrokerConfig
from linewarden.domain import Criticality, ProbeKind, State
from linewarden.mqtt import MqttClient
from linewarden.wire import (
    Birth,
    Event,
    EventBatch,
    HeartbeatBody,
    HeartbeatEvent,
    MetricsBody,
    MetricsEvent,
    StateChangeBody,
    StateChangeEvent,
    TargetInfo,
    birth_topic,
    build,
    encode,
    events_topic,
)


async def _publish(port: int, epoch: str, targets: list[TargetInfo], event: Event) -> None:
    now = int(time.time() * 1000)
    birth = Birth(agent="a1", site="p1", epoch=epoch, boot="b1", ts=now, version="0.1.0", config_hash="live",
                  targets=targets)
    batch = EventBatch(agent="a1", site="p1", epoch=epoch, boot="b1", events=[event])
    client = MqttClient(BrokerConfig(host="127.0.0.1", port=port), client_id="console-test-agent")
    connected = asyncio.Event()
    client.on_connect = connected.set
    await client.start()
    try:
        await asyncio.wait_for(connected.wait(), 10)
        await client.publish(birth_topic("p1", "a1"), encode(birth), qos=1)
        await client.publish(events_topic("p1", "a1"), encode(batch), qos=1)
    finally:
        await client.stop()


def _run(publishing: Coroutine[Any, Any, None]) -> None:
    """In a thread of its own: the caller (Playwright's sync API) may be running an event loop."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, publishing).result(30)


def publish_state(port: int, to: State, reason: str) -> None:
    now = int(time.time() * 1000) + 1
    body = build(StateChangeBody, {"target": "plc", "asset": "line3-plc", "from": "UP", "to": to,
                                           "reason": reason, "at": now})
    plc = TargetInfo(id="plc", kind=ProbeKind.OPCUA, asset="line3-plc", criticality=Criticality.CRITICAL)
    _run(_publish(port, "live", [plc], StateChangeEvent(seq=1, ts=now, body=body)))


def publish_probe_figures(port: int, minute: int, probes: int, failures: int, p95_ms: float) -> None:
    """One minute of the plc target's probe figures (an epoch of its own, so a module may also publish a state)."""
    targets = [TargetInfo(id="plc", kind=ProbeKind.OPCUA, asset="line3-plc", criticality=Criticality.CRITICAL),
               TargetInfo(id="scada", kind=ProbeKind.OPCUA, asset="scada-srv", criticality=Criticality.CRITICAL)]
    body = MetricsBody(target="plc", minute=minute, probes=probes, failures=failures, latency_p50_ms=p95_ms / 2,
                       latency_p95_ms=p95_ms, latency_max_ms=p95_ms * 2)
    _run(_publish(port, "live-figures", targets, MetricsEvent(seq=1, ts=minute + 60_000, body=body)))


def publish_heartbeat(port: int, ts: int, outbox_depth: int, oldest_unacked_at: int) -> None:
    """A heartbeat of agent a1 saying what its outbox holds (an epoch of its own, like the probe figures')."""
    targets = [TargetInfo(id="plc", kind=ProbeKind.OPCUA, asset="line3-plc", criticality=Criticality.CRITICAL),
               TargetInfo(id="scada", kind=ProbeKind.OPCUA, asset="scada-srv", criticality=Criticality.CRITICAL)]
    body = HeartbeatBody(interval_s=60, states={"plc": State.UP, "scada": State.DOWN}, outbox_depth=outbox_depth,
                         oldest_unacked_at=oldest_unacked_at)
    _run(_publish(port, "live-outbox", targets, HeartbeatEvent(seq=1, ts=ts, body=body)))
