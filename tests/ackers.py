"""A stand-in collector for tests: stores event batches in memory and acks them the way README, "Wire protocol" says.

It subscribes to `lw/v1/+/+/events`, keeps each event once by (agent, epoch, seq), and publishes a retained
ack `{epoch, through}` where `through` is the highest seq up to which every seq is stored or covered by a
gap event (seqs in a gap's range that had not arrived before the gap was seen count as dropped). It keeps the
retained collector state online; `pause()` turns it offline (it then drops batches unacked), `resume()` back.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from linewarden.config.base import BrokerConfig
from linewarden.errors import BrokerError, WireError
from linewarden.mqtt import MqttClient
from linewarden.wire import (
    COLLECTOR_STATE_TOPIC,
    Ack,
    Birth,
    CollectorState,
    Event,
    EventBatch,
    GapBody,
    GapEvent,
    ack_topic,
    birth_topic,
    decode,
    encode,
    events_topic,
)

Key = tuple[str, str]  # (agent, epoch)


class Acker:
    def __init__(self, host: str, port: int, client_id: str = "test-acker", keep_bodies: bool = True) -> None:
        self.client = MqttClient(BrokerConfig(host=host, port=port), client_id=client_id)
        self.keep_bodies = keep_bodies  # False keeps only seq -> type (for benchmarks of millions of events)
        self.events: dict[Key, dict[int, str]] = defaultdict(dict)  # seq -> event type
        self.bodies: dict[Key, dict[int, Event]] = defaultdict(dict)
        self.gaps: dict[Key, list[GapBody]] = defaultdict(list)
        self.first_delivery: dict[Key, list[int]] = defaultdict(list)
        self.through: dict[Key, int] = defaultdict(int)
        self.duplicates = 0
        self.batches = 0
        self.dropped_while_paused = 0
        self.bad_payloads = 0
        self.disconnects = 0
        self.paused = False
        self.acking = True  # False: store but never ack (a collector that commits nothing)
        self.deaf = False  # True: drop batches unseen (as if the broker lost them)
        self._covered: dict[Key, set[int]] = defaultdict(set)
        self._acking: set[Key] = set()
        self._ack_again: set[Key] = set()

    async def start(self) -> None:
        self.client.subscribe(events_topic("+", "+"), self._on_batch)
        self.client.subscribe(birth_topic("+", "+"), self._on_birth)
        self.client.on_connect = self._publish_state
        self.client.on_disconnect = self._count_disconnect
        await self.client.start()

    async def stop(self) -> None:
        """Clear the retained collector state (so later tests start from 'unknown') and disconnect."""
        if self.client.connected:
            await asyncio.wait_for(self.client.publish(COLLECTOR_STATE_TOPIC, b"", retain=True), 5)
        await self.client.stop()

    async def pause(self) -> None:
        self.paused = True
        await self._set_state(False)

    async def resume(self) -> None:
        self.paused = False
        await self._set_state(True)

    async def round_trip(self) -> None:
        """Publish to a topic of our own and wait until the broker hands it back: everything the broker
        received from others before that is delivered too."""
        topic = f"test/round-trip/{self.client.client_id}"
        arrived = asyncio.Event()
        self.client.subscribe(topic, lambda _t, _p: arrived.set())
        for _ in range(50):
            await asyncio.wait_for(self.client.publish(topic, b"x"), 5)
            try:
                await asyncio.wait_for(arrived.wait(), 0.2)
                return
            except TimeoutError:
                continue
        raise AssertionError("broker round trip did not complete")

    def seqs(self, agent: str, epoch: str) -> list[int]:
        return sorted(self.events[(agent, epoch)])

    def total(self) -> int:
        return sum(len(v) for v in self.events.values())

    async def _set_state(self, online: bool) -> None:
        payload = encode(CollectorState(online=online, ts=0))
        await asyncio.wait_for(self.client.publish(COLLECTOR_STATE_TOPIC, payload, retain=True), 5)

    def _publish_state(self) -> None:
        payload = encode(CollectorState(online=not self.paused, ts=0))
        self.client.publish(COLLECTOR_STATE_TOPIC, payload, retain=True).add_done_callback(_retrieve)

    def _count_disconnect(self) -> None:
        self.disconnects += 1

    def _on_birth(self, topic: str, payload: bytes) -> None:
        """As the collector does: the agent already deleted what its birth says was acked (a floor); the
        answer names the birth's boot."""
        try:
            birth = decode(Birth, payload)
        except WireError:
            self.bad_payloads += 1
            return
        key = (birth.agent, birth.epoch)
        self.through[key] = max(self.through[key], birth.acked_through)
        if self.acking and not self.paused:
            self._ack(birth.site, birth.agent, birth.epoch, boot=birth.boot)

    def _on_batch(self, topic: str, payload: bytes) -> None:
        try:
            batch = decode(EventBatch, payload)
        except WireError:
            self.bad_payloads += 1
            return
        if self.paused:
            self.dropped_while_paused += 1
            return
        if self.deaf:
            return
        self.batches += 1
        key = (batch.agent, batch.epoch)
        stored = self.events[key]
        for event in batch.events:
            if event.seq in stored:
                self.duplicates += 1
                continue
            stored[event.seq] = event.type
            if self.keep_bodies:
                self.bodies[key][event.seq] = event
            self.first_delivery[key].append(event.seq)
            if isinstance(event, GapEvent):
                self.gaps[key].append(event.body)
                self._covered[key].update(range(event.body.from_seq, event.body.to_seq + 1))
        through = self.through[key]
        while through + 1 in stored or through + 1 in self._covered[key]:
            through += 1
        self.through[key] = through
        if self.acking:
            self._ack(batch.site, batch.agent, batch.epoch)

    def _ack(self, site: str, agent: str, epoch: str, boot: str | None = None) -> None:
        """Publish the ack for (agent, epoch), at most one in flight: a newer one replaces the waiting one
        (a birth's answer, with `boot`, is always published)."""
        key = (agent, epoch)
        if key in self._acking and boot is None:
            self._ack_again.add(key)
            return
        ack = Ack(epoch=epoch, through=self.through[key], boot=boot)
        try:
            future = self.client.publish(ack_topic(site, agent), encode(ack), retain=True)
        except BrokerError:
            return  # the next batch (a resend, if need be) acks again
        self._acking.add(key)

        def sent(done: asyncio.Future[None]) -> None:
            done.exception()
            self._acking.discard(key)
            if key in self._ack_again:
                self._ack_again.discard(key)
                self._ack(site, agent, epoch)

        future.add_done_callback(sent)


def _retrieve(future: asyncio.Future[None]) -> None:
    """A lost ack or state message is repeated by the next one; only mark the outcome as seen."""
    future.exception()
