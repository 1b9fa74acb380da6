"""The running collector: MQTT in, store, acks and collector state out, and the liveness watch.

Messages are handled one at a time on the event loop, in arrival order: one store transaction each,
and the ack published after the commit. The retained collector state is `online` after every (re)connect
and `offline` on a clean stop, or as the Last Will when the collector vanishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from collector.ingest import Ingest, Publication
from collector.store.base import Store
from linewarden.config.collector import CollectorConfig
from linewarden.errors import BrokerError
from linewarden.mqtt import MqttClient, Will
from linewarden.wire import AGENT_SUBSCRIPTIONS, COLLECTOR_STATE_TOPIC, TOPIC_ROOT, CollectorState, encode

log = logging.getLogger(__name__)

Clock = Callable[[], int]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _state(online: bool, ts: int) -> bytes:
    return encode(CollectorState(online=online, ts=ts))


class CollectorService:
    def __init__(
        self,
        config: CollectorConfig,
        store: Store,
        clock: Clock = wall_clock_ms,
        liveness_every_s: float = 5.0,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.liveness_every_s = liveness_every_s
        self.ingest = Ingest(store, config.liveness, watching_since=clock())
        self.mqtt = MqttClient(
            config.broker,
            client_id=f"linewarden-collector-{config.collector.id}",
            will=Will(COLLECTOR_STATE_TOPIC, _state(False, self.ingest.watching_since), qos=1, retain=True),
        )
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for topic_filter in AGENT_SUBSCRIPTIONS:
            self.mqtt.subscribe(f"{TOPIC_ROOT}/{topic_filter}", self._on_message)
        self.mqtt.on_connect = self._on_connect
        await self.mqtt.start()
        self._watch = asyncio.create_task(self._watch_liveness(), name="collector-liveness")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        if self.mqtt.connected:
            with contextlib.suppress(BrokerError):
                await asyncio.wait_for(
                    self.mqtt.publish(COLLECTOR_STATE_TOPIC, _state(False, self.clock()), retain=True), timeout=5
                )
        await self.mqtt.stop()

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    # ------------------------------------------------------------ event loop

    def _on_connect(self) -> None:
        self._publish([Publication(COLLECTOR_STATE_TOPIC, _state(True, self.clock()), retain=True)])

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            out = self.ingest.handle(topic, payload, self.clock())
        except Exception:
            # The store failed: nothing is acked, so the agent sends the batch again.
            log.exception("could not store message on %s", topic)
            return
        self._publish(out)

    def _publish(self, publications: list[Publication]) -> None:
        for p in publications:
            try:
                future = self.mqtt.publish(p.topic, p.payload, qos=p.qos, retain=p.retain)
            except BrokerError as exc:
                log.warning("could not publish to %s: %s", p.topic, exc)
                continue
            future.add_done_callback(_log_failure)

    async def _watch_liveness(self) -> None:
        while True:
            await asyncio.sleep(self.liveness_every_s)
            try:
                self.ingest.check_liveness(self.clock())
            except Exception:
                log.exception("liveness check failed")


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("publish not acknowledged by the broker: %s", future.exception())
