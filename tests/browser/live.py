"""Publishing as an agent would: a birth and one state change, over the real broker."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from linewarden.config.base import BrokerConfig
from linewarden.domain import Criticality, ProbeKind, State
from linewarden.mqtt import MqttClient
from linewarden.wire import (
    Birth,
    EventBatch,
    StateChangeBody,
    StateChangeEvent,
    TargetInfo,
    birth_topic,
    encode,
    events_topic,
)


async def _publish(port: int, to: State, reason: str) -> None:
    now = int(time.time() * 1000)
    birth = Birth(agent="a1", site="p1", epoch="live", boot="b1", ts=now, version="0.1.0", config_hash="live",
                  targets=[TargetInfo(id="plc", kind=ProbeKind.OPCUA, asset="line3-plc",
                                      criticality=Criticality.CRITICAL)])
    body = StateChangeBody.model_validate({"target": "plc", "asset": "line3-plc", "from": "UP", "to": to,
                                           "reason": reason, "at": now + 1})
    batch = EventBatch(agent="a1", site="p1", epoch="live", boot="b1",
                       events=[StateChangeEvent(seq=1, ts=now + 1, body=body)])
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


def publish_state(port: int, to: State, reason: str) -> None:
    """In a thread of its own: the caller (Playwright's sync API) may be running an event loop."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _publish(port, to, reason)).result(30)
