"""Forward the outbox to the collector over MQTT (README: wire protocol), deleting only what the collector acknowledged.

On each connect, and each time the collector comes online (it may have missed the birth while away), publish
birth (with the last acked seq), then send from the first unacknowledged seq. Events go in seq order as
`EventBatch` messages of up to `batch_max_events` and `batch_max_bytes` (a larger single event goes alone; the
wire limits keep it well below the collector's payload limit), QoS 1, with at most `window` batches waiting for
their PUBACK. A PUBACK only means the broker has the batch in memory; rows are deleted when the collector's
retained ack `{epoch, through}` covers them. No ack within `ack_timeout` → send again from the first unacked seq.

While the retained collector state says offline, nothing is sent. Before any state message has been seen (a
collector that never ran, or whose retained state was cleared) the forwarder sends: the events wait in the
broker for nobody, but nothing is deleted without an ack, so sending costs at most a resend, while holding back
would stall every agent on a broker that never carried a collector state.

Acks are checked before anything is deleted: an ack for another epoch, or one beyond the highest seq this
outbox has handed to the broker in its epoch (`sent_through`), deletes nothing; it is logged once per distinct
value and counted (`rejected_acks`). The one ack that may be beyond what was sent is the collector's answer to
this process's own birth (it names our boot): then the collector holds seqs this database never sent, so the
database was restored or copied, and the outbox moves to a new epoch (keeping every unacknowledged event).

The Last Will is Death("connection lost") with the `ts` of `run()`'s start (a will is fixed when set); a clean
`stop()` publishes Death(reason) with the time of stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec

from agent.outbox import Outbox, OutboxEvent
from linewarden.certs import CertInfo
from linewarden.config.agent import AgentConfig
from linewarden.errors import BrokerError, ConnectionLost, StorageFull, StoreError, WireError
from linewarden.mqtt import MqttClient, Will
from linewarden.wire import (
    COLLECTOR_STATE_TOPIC,
    Ack,
    Birth,
    CollectorState,
    Death,
    MaintenanceAnnouncement,
    ack_topic,
    agent_maintenance_topic,
    birth_topic,
    death_topic,
    decode,
    encode,
    events_topic,
)

log = logging.getLogger(__name__)

DEATH_PUBACK_TIMEOUT_S = 2.0
# After the broker refuses a batch (MQTT 5 reason code), wait before trying again rather than spin.
REFUSED_PAUSE_S = 5.0
# After connecting, how long to wait for the retained ack (none exists for a new agent) before sending.
RETAINED_ACK_WAIT_S = 1.0
# After the client refused a batch at once (the connection is going down), wait this long for news.
NOT_SENT_PAUSE_S = 0.1
# Distinct rejected acks logged, beyond which they are only counted (a forger cannot flood the log).
REJECTED_LOG_LIMIT = 100


@dataclass(frozen=True)
class ForwarderStatus:
    connected: bool
    broker: str  # host:port of the broker (a cluster's node) connected to or being tried
    collector_online: bool | None  # None: no collector state seen yet
    last_ack_seq: int
    last_ack_at_ms: int | None
    sent_through: int
    in_flight: int  # batches waiting for their PUBACK
    rejected_acks: int  # acks for another epoch or beyond what was sent: ignored


class Forwarder:
    """Send the outbox to the broker and apply the collector's acks. `await run()` until `await stop()`."""

    def __init__(
        self,
        agent_cfg: AgentConfig,
        outbox: Outbox,
        birth: Callable[[], Birth],
        boot: str,
        clock_ms: Callable[[], int],
        client: MqttClient | None = None,
    ) -> None:
        self._site = agent_cfg.agent.site
        self._agent = agent_cfg.agent.id
        self._cfg = agent_cfg.outbox
        self._outbox = outbox
        self._birth = birth
        self._boot = boot
        self._clock_ms = clock_ms
        self._client = client or MqttClient(agent_cfg.broker, client_id=f"lw-agent-{self._site}-{self._agent}")
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._events_topic = events_topic(self._site, self._agent)
        self._batch_head = self._head()
        self._acked = outbox.stats().last_ack_seq
        self._sent = self._acked
        self._in_flight = 0
        self._collector_online: bool | None = None
        self._ack_deadline: float | None = None
        self._paused_until = 0.0
        self._retained_ack_until = 0.0
        self._state_wait_until = 0.0
        self._changed = asyncio.Event()
        self._running = False
        self._stopping = False
        self._stop_reason = "stopped"
        self._done = asyncio.Event()
        self._looping = False
        self.rejected_acks = 0
        self._rejected_seen: set[tuple[str, int]] = set()
        self._unsaved_sent_logged = False
        self.connects = 0  # broker connections made (the first, then each reconnect)
        self.maintenance: MaintenanceAnnouncement | None = None  # the site's windows, as last announced

    def _head(self) -> str:
        """The batch JSON up to its events, for the outbox's current epoch."""
        return json.dumps(
            {"v": 1, "agent": self._agent, "site": self._site, "epoch": self._outbox.epoch, "boot": self._boot},
            separators=(",", ":"),
        )[:-1]

    # ------------------------------------------------------------ public

    def wake(self) -> None:
        """New events are in the outbox."""
        self._changed.set()

    def status(self) -> ForwarderStatus:
        stats = self._outbox.stats()
        return ForwarderStatus(
            connected=self._client.connected,
            broker=self._client.broker,
            collector_online=self._collector_online,
            last_ack_seq=stats.last_ack_seq,
            last_ack_at_ms=stats.last_ack_at_ms,
            sent_through=self._sent,
            in_flight=self._in_flight,
            rejected_acks=self.rejected_acks,
        )

    def announce(self) -> None:
        """Publish a fresh birth now (when connected): the agent's outbox health changed."""
        if self._client.connected:
            self._publish_birth()
    def certificates(self) -> list[CertInfo]:
        """The broker link's certificates: own, CA, and the broker's as seen at connect."""
        return self._client.certificates()

    async def run(self) -> None:
        """Connect (once) and send until `stop()`. A crash of the sending loop leaves the connection up, so
        a supervisor may call `run()` again."""
        if not self._running:
            self._client.set_will(Will(death_topic(self._site, self._agent), self._death("connection lost")))
            self._client.subscribe(ack_topic(self._site, self._agent), self._on_ack)
            self._client.subscribe(COLLECTOR_STATE_TOPIC, self._on_collector_state)
            # Optional: a broker with an ACL from before the agent's own maintenance topic refuses it.
            maintenance = agent_maintenance_topic(self._site, self._agent)
            self._client.subscribe(maintenance, self._on_maintenance, required=False)
            self._running = True
            await self._client.start()
        self._looping = True
        try:
            while not self._stopping:
                await self._step()
        finally:
            self._looping = False
        await self._shut_down()

    async def stop(self, reason: str = "stopped") -> None:
        """Publish Death(reason), disconnect, and let `run()` return (or shut down here when it is not
        running: it crashed and waits for its restart)."""
        self._stop_reason = reason
        self._stopping = True
        self._changed.set()
        if self._looping:
            await self._done.wait()
        elif self._running and not self._done.is_set():
            await self._shut_down()

    # ------------------------------------------------------------ sending

    async def _step(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._ack_deadline is not None and now >= self._ack_deadline and self._sent > self._acked:
            log.info("no ack within %s; resending from seq %d", self._cfg.ack_timeout, self._acked + 1)
            self._rewind()
        timeout = self._cfg.ack_timeout.total_seconds() if self._ack_deadline is None else self._ack_deadline - now
        if self._may_send(now) and self._in_flight < self._cfg.window:
            rows = self._outbox.pending(self._sent, self._cfg.batch_max_events)
            if rows and self._send(rows):
                return
            if rows:  # paho says not connected before the loop hears of it: wait for that news, never spin
                timeout = min(timeout, NOT_SENT_PAUSE_S)
        elif now < self._hold_until():
            timeout = min(timeout, self._hold_until() - now)
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), max(timeout, 0.01))

    def _may_send(self, now: float) -> bool:
        return self._client.connected and self._collector_online is not False and now >= self._hold_until()

    def _hold_until(self) -> float:
        """Loop time before which nothing is sent, though connected: a refused batch's pause; the retained
        ack's short wait; and, while the collector's state is unknown (a broker that restarted has lost it),
        until the collector says it is online (it subscribes before it says so, so nothing sent after that is
        published to nobody), at most one ack timeout."""
        hold = max(self._paused_until, self._retained_ack_until)
        return max(hold, self._state_wait_until) if self._collector_online is None else hold

    def _send(self, rows: Sequence[OutboxEvent]) -> bool:
        """Publish one batch (as many of `rows` as fit in `batch_max_bytes`); False when the client refused it
        at once."""
        payload, count = self._batch_payload(rows)
        rows = rows[:count]
        try:
            self._outbox.mark_sent(rows[-1].seq)
        except StorageFull as exc:  # remembered in memory: only a restart meanwhile forgets it
            if not self._unsaved_sent_logged:
                log.warning("cannot record what was sent (%s); sending anyway", exc)
                self._unsaved_sent_logged = True
        try:
            future = self._client.publish(self._events_topic, payload)
        except BrokerError as exc:
            log.debug("batch not sent: %s", exc)
            return False
        self._sent = rows[-1].seq
        self._in_flight += 1
        if self._ack_deadline is None:
            self._ack_deadline = asyncio.get_running_loop().time() + self._cfg.ack_timeout.total_seconds()
        future.add_done_callback(self._on_puback)
        return True

    def _batch_payload(self, rows: Sequence[OutboxEvent]) -> tuple[bytes, int]:
        """The batch of the first of `rows` that fit in `batch_max_bytes` (at least one), and how many it holds."""
        # Built from the stored, already validated body JSON: the same document encode(EventBatch(...)) gives,
        # without parsing and re-serialising every event.
        head = f'{self._batch_head},"events":['.encode()
        room = self._cfg.batch_max_bytes - len(head) - 2
        events: list[bytes] = []
        for r in rows:
            event = f'{{"seq":{r.seq},"ts":{r.ts},"type":"{r.type}","body":{r.body}}}'.encode()
            room -= len(event) + (1 if events else 0)
            if events and room < 0:
                break
            events.append(event)
        return head + b",".join(events) + b"]}", len(events)

    def _on_puback(self, future: asyncio.Future[None]) -> None:
        self._in_flight -= 1
        self._changed.set()
        exc = future.exception()
        # A batch lost with its connection is no refusal: the reconnect (_on_connect) resends from the first
        # unacked seq at once. Its failure may be processed after that reconnect, so it must not rewind again.
        if exc is None or isinstance(exc, ConnectionLost) or not self._client.connected:
            return
        log.warning("broker refused a batch (%s); resending from seq %d", exc, self._acked + 1)
        self._rewind()
        self._paused_until = asyncio.get_running_loop().time() + REFUSED_PAUSE_S

    def _rewind(self) -> None:
        self._sent = self._acked
        self._ack_deadline = None
        self._changed.set()

    # ------------------------------------------------------------ broker side

    def _on_connect(self) -> None:
        self.connects += 1
        # Wait briefly for the retained ack before sending: it tells a restored database (see _on_ack) before
        # its reused seqs go out.
        now = asyncio.get_running_loop().time()
        self._retained_ack_until = now + RETAINED_ACK_WAIT_S
        self._state_wait_until = now + self._cfg.ack_timeout.total_seconds()
        self._rewind()
        self._publish_birth()

    def _publish_birth(self) -> None:
        birth = msgspec.structs.replace(
            self._birth(), acked_through=self._acked, epoch=self._outbox.epoch, ts=self._clock_ms()
        )
        try:
            self._client.publish(birth_topic(self._site, self._agent), encode(birth)).add_done_callback(
                _log_failure("birth")
            )
        except BrokerError as exc:
            log.debug("birth not sent: %s", exc)

    def _on_disconnect(self) -> None:
        # Unknown until the broker hands us the retained state again: a broker that restarted without it, or
        # a collector that comes back later, then shows as a change to online, and we resend what was lost.
        self._collector_online = None
        self._changed.set()

    def _on_ack(self, topic: str, payload: bytes) -> None:
        if not payload:
            return
        try:
            ack = decode(Ack, payload)
        except WireError as exc:
            log.warning("bad ack on %s ignored: %s", topic, exc)
            return
        answer = ack.boot == self._boot  # the collector's answer to our birth
        if answer:
            self._retained_ack_until = 0.0
        self._changed.set()
        if ack.epoch != self._outbox.epoch:
            self._reject(ack, f"it is for epoch {ack.epoch}, ours is {self._outbox.epoch}")
            return
        sent_through = self._outbox.stats().sent_through
        if ack.through > sent_through and not answer:
            self._reject(ack, f"it is beyond seq {sent_through}, the last one sent")
            return
        self._retained_ack_until = 0.0
        if ack.through > sent_through:
            self._outbox.start_new_epoch()
            self._batch_head = self._head()
            self._acked = self._outbox.stats().last_ack_seq
            self._on_connect()  # a birth for the new epoch (its acked_through is the collector's floor), resend
            return
        try:
            self._outbox.ack(ack.epoch, ack.through)
        except StoreError as exc:  # a full disk: the events stay, and a later ack (they are resent) deletes them
            log.warning("ack through seq %d not applied: %s", ack.through, exc)
            return
        acked = self._outbox.stats().last_ack_seq
        if acked <= self._acked:
            return
        self._acked = acked
        self._sent = max(self._sent, acked)
        loop_time = asyncio.get_running_loop().time()
        self._ack_deadline = loop_time + self._cfg.ack_timeout.total_seconds() if self._sent > acked else None
        self._changed.set()

    def _reject(self, ack: Ack, why: str) -> None:
        self.rejected_acks += 1
        key = (ack.epoch, ack.through)
        if key in self._rejected_seen or len(self._rejected_seen) > REJECTED_LOG_LIMIT:
            return
        self._rejected_seen.add(key)
        more = " (further rejected acks are only counted)" if len(self._rejected_seen) > REJECTED_LOG_LIMIT else ""
        log.warning("ack through %d of epoch %s ignored: %s%s", ack.through, ack.epoch, why, more)

    def _on_maintenance(self, topic: str, payload: bytes) -> None:
        try:
            ann = decode(MaintenanceAnnouncement, payload) if payload else None
        except WireError as exc:
            log.warning("bad maintenance announcement on %s ignored: %s", topic, exc)
            return
        if ann is not None and ann.site != self._site:
            log.warning("maintenance announcement for site %s on %s ignored", ann.site, topic)
            return
        self.maintenance = ann

    def _on_collector_state(self, topic: str, payload: bytes) -> None:
        try:
            online = decode(CollectorState, payload).online if payload else None
        except WireError as exc:
            log.warning("bad collector state ignored: %s", exc)
            return
        if online == self._collector_online:
            log.debug("collector state repeated: online=%s", online)
            return
        self._collector_online = online
        if online is False:
            log.info("collector offline: holding events back")
        else:
            log.info("collector %s: sending from seq %d", "online" if online else "state unknown", self._acked + 1)
            self._rewind()
            if online:  # a collector that was away missed our birth, and takes our targets' assets from it
                self._publish_birth()
        self._changed.set()

    # ------------------------------------------------------------ stopping

    async def _shut_down(self) -> None:
        if self._done.is_set():
            return
        try:
            if self._client.connected:
                future = self._client.publish(death_topic(self._site, self._agent), self._death(self._stop_reason))
                await asyncio.wait_for(future, DEATH_PUBACK_TIMEOUT_S)
        except (BrokerError, TimeoutError) as exc:
            log.warning("death message not confirmed: %s", exc)
        finally:
            await self._client.stop()
            self._done.set()

    def _death(self, reason: str) -> bytes:
        return encode(
            Death(
                agent=self._agent,
                site=self._site,
                epoch=self._outbox.epoch,
                boot=self._boot,
                ts=self._clock_ms(),
                reason=reason,
            )
        )


def _log_failure(what: str) -> Callable[[asyncio.Future[None]], None]:
    def done(future: asyncio.Future[None]) -> None:
        exc = future.exception()
        if exc is not None:
            log.debug("%s not confirmed: %s", what, exc)

    return done
