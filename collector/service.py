"""The running collector: MQTT in, store, acks and collector state out, the liveness watch, and ticketing.

Messages are handled on the event loop, in arrival order: those that arrived while the previous ones were
being stored go in one store transaction (at most GROUP_MAX), and their acks and PUBACKs follow its commit.
The retained collector state is `online` after every (re)connect
and `offline` on a clean stop, or as the Last Will when the collector vanishes.

Ticketing: after each committed event batch the router routes every incident not routed yet (at start too,
so an incident stored just before a crash is not lost), the dispatcher sends the outbox's steps to the
vendors, the timer loop fires escalations, reminders and RCA deadlines, and the API serves vendors and
plant IT on `api.host:api.port` (port 0: a free port, logged and kept in `api_port`).

A message whose transaction fails for lack of space (StorageFull: the disk, or the database, is full) or
because the database cannot be reached (StoreUnavailable: PostgreSQL restarted or dropped the connection) is
held in memory without its PUBACK, and so is every later one, in arrival order; they are retried with backoff
(0.5 s doubling to 10 s) and PUBACKed and acked once committed. The broker's in-flight window for the collector
bounds how many are held (at most HELD_MAX; beyond that a message is PUBACKed unstored: the agent, which
gets no ack for it, sends it again). Nothing is acked that is not committed, so nothing is lost.

Several collectors may share one PostgreSQL (docs/scale-out.md): with `ingest.share_group` set they subscribe
as one MQTT shared-subscription group, so the broker hands each agent message to one of them, and each says the
collector state `online` again when another one's Last Will says `offline`.

The loops sleep while there is nothing to do (collector/wakeup.py): work written in this process (a ticket step,
a timer, a ticket's state, an agent's birth) wakes the loop that does it; otherwise each sleeps until the next
due time it read from the store, at most a safety poll (`ticket_poll_s`, `liveness_every_s`) for work another
collector process wrote and left undone (docs/scale-out.md, "Idle cost").

The dispatch, timer, liveness and retry loops run under one supervisor (linewarden/supervise.py): a crash is
logged with its traceback, counted and restarted with backoff; repeated crashes end `run()` with
SupervisorGaveUp and `linewarden collector run` exits 1, for the service manager to restart it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

from fastapi import FastAPI

from collector import retention
from collector.api.app import create_app
from collector.api.server import ApiServer
from collector.audit import AuditLog
from collector.audit_evidence import Checkpointer, EvidenceError, checkpointer_for, latest_checkpoint
from collector.console.app import create_console
from collector.console.totp_vault import TotpVault, open_vault
from collector.contracts import record_contracts
from collector.escalation.notifier import EscalationNotifier
from collector.ingest import Ingest, Publication
from collector.maintenance import FAR_FUTURE_MS, announcement, announcement_topics
from collector.metrics import CollectorMetrics, add_ops_routes
from collector.remote_access.listener import SyslogListener
from collector.store.base import Store
from collector.ticketing.base import TicketSink
from collector.ticketing.dispatch import Dispatcher, RetryPolicy
from collector.ticketing.lifecycle import Lifecycle
from collector.ticketing.plant_it import PLANT_IT, PlantItSink
from collector.ticketing.readback import TicketReadback, VendorReader
from collector.ticketing.registry import make_reader, make_sink
from collector.ticketing.router import Router
from collector.ticketing.timers import Timers
from collector.wakeup import SAFETY_POLL_S, Wakeup, sleep_s
from linewarden.book import ContractBook
from linewarden.config.collector import CollectorConfig
from linewarden.errors import BrokerError, StorageFull, StoreError, StoreUnavailable, TicketRejected, WireError
from linewarden.mqtt import MqttClient, Will, shared
from linewarden.supervise import RestartPolicy, Supervisor
from linewarden.wire import (
    AGENT_SUBSCRIPTIONS,
    COLLECTOR_STATE_TOPIC,
    TOPIC_ROOT,
    CollectorState,
    agent_maintenance_topic,
    decode,
    encode,
)

log = logging.getLogger(__name__)

Clock = Callable[[], int]

RESTART_POLICY = RestartPolicy()
HELD_MAX = 1000
# Messages committed in one transaction at most: those that arrived while the previous group was stored.
GROUP_MAX = 100
PRUNE_MIN_WAIT_S = 1.0
HELD_RETRY_FIRST_S = 0.5
HELD_RETRY_MAX_S = 10.0
STOP_WAIT_S = 10.0  # for the ticketing loops to finish their round at stop
# The liveness watch checks at the next agent's deadline, and at least this often (its safety poll).
LIVENESS_POLL_S = 60.0
# The cyclic garbage collector's first threshold (Python's default: 700). Ingest holds a run's decoded events,
# thousands of objects, at once: at 700 each run set off collections that scanned them and promoted them to the
# older generations, whose collections scan the whole heap: a quarter of ingest's CPU time. They are freed by
# reference counting; the collector only ever has cycles to find.
GC_FIRST_THRESHOLD = 10_000


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
        liveness_every_s: float = LIVENESS_POLL_S,
        book: ContractBook | None = None,
        dispatch_policy: RetryPolicy | None = None,
        ticket_poll_s: float = SAFETY_POLL_S,
        serve_api: bool = False,
        totp_vault: TotpVault | None = None,
    ) -> None:
        """`totp_vault` encrypts the console users' TOTP secrets (default: opened from the config's key file)."""
        self.config = config
        self.store = store
        self.clock = clock
        self.liveness_every_s = liveness_every_s
        self.book = book if book is not None else ContractBook({}, {})
        self.ticket_poll_s = ticket_poll_s
        origin = socket.gethostname()
        self.metrics = CollectorMetrics(store, clock, lambda: self.mqtt.connected, lambda: self.mqtt.certificates())
        self.sinks = {cid: self.metrics.metered(sink) for cid, sink in self._sinks().items()}
        self.lifecycle = Lifecycle(store, self.book, clock, origin, on_change=self._work_written)
        self.dispatcher = Dispatcher(
            store, self.sinks, clock=clock, policy=dispatch_policy or RetryPolicy(), origin=origin,
            on_recorded=self.lifecycle.on_recorded, worker=config.collector.id,
        )
        self.router = Router(
            store, self.book, self.lifecycle, clock, origin, plant_it_webhook=PLANT_IT in self.sinks
        )
        self.timers = Timers(store, self.book, clock, origin, on_fired=self._work_written)
        self.readback = TicketReadback(store, self.lifecycle, self._readers(), clock, origin)
        directory = self.book.contacts
        self.escalation = None if directory is None else EscalationNotifier(
            store, self.book, directory, config.escalation, clock, origin
        )
        self.api: ApiServer | None = None
        self.console: FastAPI | None = None
        self._warm_stop = threading.Event()
        self._warming: asyncio.Task[None] | None = None
        if serve_api:
            rca_dir = config.collector.data_dir / "rca"
            app = create_app(
                store, self.lifecycle, clock, rca_dir, self._maintenance_changed, self.book,
                audit_checkpoint=lambda: latest_checkpoint(config.checkpoint_file),
                max_body_bytes=config.api.max_body_bytes, max_upload_bytes=config.api.max_upload_bytes,
            )
            add_ops_routes(app, self.metrics, store, lambda: self.mqtt.connected)
            if config.console.enabled:
                self.console = create_console(store, self.book, clock, config.console, config.collector.timezone,
                                              self._maintenance_changed, config.liveness.missed_heartbeats,
                                              evidence_dir=config.collector.data_dir / "evidence",
                                              audit_checkpoint=lambda: latest_checkpoint(config.checkpoint_file),
                                              totp_vault=totp_vault if totp_vault is not None else open_vault(
                                                  store, config.totp_key_file, "collector config"))
                app.mount(config.console.prefix, self.console)
            self.api = ApiServer(app, config.api.host, config.api.port, config.api.tls_cert_file,
                                 config.api.tls_key_file, config.api.trusted_proxies)
        self.api_port: int | None = None
        self._stop_ticketing = asyncio.Event()
        self._ticketing: list[asyncio.Task[None]] = []
        self.ingest = Ingest(
            store,
            config.liveness,
            watching_since=clock(),
            max_payload_bytes=config.ingest.max_payload_bytes,
            birth_wait_ms=int(config.ingest.birth_wait.total_seconds() * 1000),
        )
        self.ingest.on_dead_letter = self.metrics.dead_letter
        self.ingest.on_held = self.metrics.held_batch
        self.ingest.on_new_agent = self._agent_born
        self.mqtt = MqttClient(
            config.broker,
            client_id=f"linewarden-collector-{config.collector.id}",
            will=Will(COLLECTOR_STATE_TOPIC, _state(False, self.ingest.watching_since), qos=1, retain=True),
        )
        self._watch: asyncio.Task[None] | None = None
        self._liveness_wake = Wakeup()
        self.checkpointer = checkpointer_for(config)
        self._checkpoints: asyncio.Task[None] | None = None
        self._pruning: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.supervisor = Supervisor(RESTART_POLICY)
        self._queued: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self._held: deque[tuple[str, bytes, asyncio.Future[None]]] = deque()
        self._held_added = asyncio.Event()
        self._stopping = False
        self._retry: asyncio.Task[None] | None = None
        self.storage_fault: str | None = None  # why messages are held, while they are
        ra = config.remote_access
        self.remote_access = SyslogListener(store, ra, clock) if ra.enabled else None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        gc.set_threshold(GC_FIRST_THRESHOLD, *gc.get_threshold()[1:])
        self._stopping = False
        group = self.config.ingest.share_group
        for topic_filter in AGENT_SUBSCRIPTIONS:
            self.mqtt.subscribe(shared(group, f"{TOPIC_ROOT}/{topic_filter}"), self._on_message)
        if group is not None:
            self.mqtt.subscribe(COLLECTOR_STATE_TOPIC, self._on_collector_state)
        self.mqtt.on_connect = self._on_connect
        changed = record_contracts(self.store, self.book, self.clock(), "collector", socket.gethostname())
        if changed:
            log.info("%d contract file(s) new or changed since the last start: recorded in the audit log", changed)
        self._route()  # what was stored but not routed before a restart
        self._stop_ticketing.clear()
        sup, stop, poll_s = self.supervisor, self._stop_ticketing, self.ticket_poll_s
        self._ticketing = [
            sup.spawn("ticket-dispatch", functools.partial(self.dispatcher.run, stop, poll_s)),
            sup.spawn("ticket-timers", functools.partial(self.timers.run, stop, poll_s)),
            sup.spawn("ticket-readback", functools.partial(self.readback.run, stop, poll_s)),
        ]
        if self.escalation is not None:
            self._ticketing.append(sup.spawn("escalation-notify", functools.partial(self.escalation.run, stop, poll_s)))
        self._retry = sup.spawn("ingest-retry", self._retry_held)
        if self.api is not None:
            self.api_port = await self.api.start()
            log.info("API listening on http://%s:%d (OpenAPI at /openapi.json)", self.config.api.host, self.api_port)
            if self.console is not None:
                log.info("console at http://%s:%d%s/", self.config.api.host, self.api_port, self.config.console.prefix)
                self._warm_stop.clear()
                self._warming = asyncio.create_task(asyncio.to_thread(self.console.state.warm, self._warm_stop),
                                                    name="console-warm")
        if self.remote_access is not None:
            await self.remote_access.start()
        await self.mqtt.start()
        self._watch = sup.spawn("collector-liveness", self._watch_liveness)
        if self.checkpointer is not None:
            self._checkpoints = sup.spawn(
                "audit-checkpoints", functools.partial(self._checkpoint_forever, self.checkpointer)
            )
        if self.config.retention.schedule:
            self._pruning = sup.spawn("retention-prune", self._prune_forever)

    async def _prune_forever(self) -> None:
        """`collector prune` every `retention.every` (docs/retention.md), in a thread beside ingest."""
        last = self.clock()
        while True:
            due = retention.next_prune_after(self.config, last)
            await asyncio.sleep(max(PRUNE_MIN_WAIT_S, (due - self.clock()) / 1000))
            if self.clock() < due:
                continue
            last = self.clock()
            try:
                await asyncio.to_thread(retention.prune, self.store, self.config, last)
            except (StoreError, OSError) as exc:
                log.error("scheduled prune failed, tried again in %s: %s", self.config.retention.every, exc)

    async def _checkpoint_forever(self, checkpointer: Checkpointer) -> None:
        """A signed checkpoint at start and every `audit.checkpoint_interval` in which the log grew."""
        audit_log = AuditLog(self.store)
        while True:
            try:
                await asyncio.to_thread(checkpointer.checkpoint, audit_log, self.clock(), True)
            except EvidenceError as exc:
                log.error("audit checkpoint failed: %s", exc)
            await asyncio.sleep(self.config.audit.checkpoint_interval.total_seconds())

    def _sinks(self) -> dict[str, TicketSink]:
        sinks: dict[str, TicketSink] = {}
        for cid, contract in self.book.contracts.items():
            if contract.ticketing is None:
                continue
            try:
                sinks[cid] = make_sink(contract.ticketing)
            except TicketRejected as exc:
                log.error("contract %s: no ticket sink: %s (its tickets fail until this is fixed)", cid, exc)
        if self.config.plant_it.webhook_url:
            sinks[PLANT_IT] = PlantItSink(self.config.plant_it.webhook_url)
        return sinks

    def _readers(self) -> dict[str, VendorReader]:
        readers: dict[str, VendorReader] = {}
        for cid, contract in self.book.contracts.items():
            if contract.ticketing is None:
                continue
            try:
                reader = make_reader(contract.ticketing)
            except TicketRejected as exc:
                log.error("contract %s: no read-back: %s", cid, exc)
                continue
            if reader is not None:
                readers[cid] = reader
        return readers

    def _route(self) -> None:
        try:
            self.router.route_pending()
        except Exception:
            log.exception("routing incidents failed; they are routed after the next batch or restart")
        # Routes, severity raises and restorations write steps and timers (or nothing, which costs a round).
        self._work_written()

    def _work_written(self) -> None:
        """Work for the ticketing loops was written in this process (called from any thread): they look now."""
        self.dispatcher.wake()
        self.timers.wake()
        if self.escalation is not None:
            self.escalation.wake()

    async def stop(self) -> None:
        self._stopping = True
        self._stop_ticketing.set()
        if self._ticketing:
            # A loop waiting out a restart backoff would see the stop only after it: cancel what is left.
            _, late = await asyncio.wait(self._ticketing, timeout=STOP_WAIT_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*self._ticketing, return_exceptions=True)
        self._ticketing = []
        if self.console is not None:
            self._warm_stop.set()
            if self._warming is not None:
                with contextlib.suppress(Exception):
                    await self._warming
            await self.console.state.hub.stop()
        if self.api is not None:
            await self.api.stop()
        if self.remote_access is not None:
            await self.remote_access.stop()
        for sink in self.sinks.values():
            with contextlib.suppress(Exception):
                await sink.aclose()
        await self.readback.aclose()
        for loop_task in (self._watch, self._retry, self._checkpoints, self._pruning):
            if loop_task is not None:
                loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop_task
        self._watch = self._retry = self._checkpoints = self._pruning = None
        if self.mqtt.connected:
            with contextlib.suppress(BrokerError):
                await asyncio.wait_for(
                    self.mqtt.publish(COLLECTOR_STATE_TOPIC, _state(False, self.clock()), retain=True), timeout=5
                )
        await self.mqtt.stop()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set; raises SupervisorGaveUp when a task keeps crashing."""
        await self.start()
        stopping = asyncio.create_task(stop.wait())
        failed = asyncio.create_task(self.supervisor.failed())
        try:
            await asyncio.wait([stopping, failed], return_when=asyncio.FIRST_COMPLETED)
            if failed.done():
                failed.result()
        finally:
            for task in (stopping, failed):
                task.cancel()
            await asyncio.gather(stopping, failed, return_exceptions=True)
            await self.stop()

    # ------------------------------------------------------------ event loop

    def _on_connect(self) -> None:
        self._publish([Publication(COLLECTOR_STATE_TOPIC, _state(True, self.clock()), retain=True)])
        # A broker restarted without persistence has lost the retained windows: announce them again.
        now = self.clock()
        sites = {w.site for w in self.store.maintenance_windows(now, FAR_FUTURE_MS) if w.cancelled_at is None}
        for site in sorted(sites):
            self._publish_maintenance(site)

    def _on_collector_state(self, topic: str, payload: bytes) -> None:
        """Sharing the ingest: the state is one retained message for all collectors, and another one's Last Will
        (or clean stop) says `offline`; while this one serves, it says `online` again, so agents do not hold
        their events back (they resend what the one that went had not acked)."""
        if self._stopping or not payload:
            return
        try:
            online = decode(CollectorState, payload).online
        except WireError as exc:
            log.warning("bad collector state ignored: %s", exc)
            return
        if not online:
            log.info("another collector went offline; this one serves: collector state online again")
            self._publish([Publication(COLLECTOR_STATE_TOPIC, _state(True, self.clock()), retain=True)])

    def _maintenance_changed(self, site: str) -> None:
        """Called from the API's worker threads: publish on the event loop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._publish_maintenance, site)

    def _publish_maintenance(self, site: str, topics: list[str] | None = None) -> None:
        """The site's windows on `topics`, by default the site's and each of its known agents'."""
        payload = encode(announcement(self.store, site, self.clock()))
        topics = announcement_topics(self.store, site) if topics is None else topics
        self._publish([Publication(topic, payload, retain=True) for topic in topics])

    def _agent_born(self, site: str, agent: str) -> None:
        """Called by ingest for an agent's first birth (inside its transaction): once committed, the agent's own
        maintenance topic gets its site's windows."""
        if self._loop is not None:
            self._loop.call_soon(self._publish_maintenance, site, [agent_maintenance_topic(site, agent)])

    @property
    def held_messages(self) -> int:
        """Messages received but not committed yet (the store is full or unreachable): neither PUBACKed nor acked."""
        return len(self._held)

    def _on_message(self, topic: str, payload: bytes) -> asyncio.Future[None]:
        """Queue one message for the next group commit; the returned future holds its PUBACK until then."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued.append((topic, payload, future))
        if len(self._queued) == 1:
            # After the messages the MQTT thread has handed over already: they join this group.
            asyncio.get_running_loop().call_soon(self._commit_queued)
        return future

    def _commit_queued(self) -> None:
        queued, self._queued = self._queued, []
        for start in range(0, len(queued), GROUP_MAX):
            group = queued[start : start + GROUP_MAX]
            committed = None if self._held else self._handle([(topic, payload) for topic, payload, _ in group])
            if committed is None and not self._held:
                # The group failed for another reason than a full or unreachable store: one by one, so only the
                # message the store fails on is left out.
                for message in group:
                    if self._held or not self._handle([message[:2]], alone=True):
                        self._hold(message)
                    else:
                        message[2].set_result(None)
                continue
            for message in group:
                if committed:
                    message[2].set_result(None)
                else:
                    self._hold(message)

    def _hold(self, message: tuple[str, bytes, asyncio.Future[None]]) -> None:
        if len(self._held) >= HELD_MAX:
            log.warning("%d messages held already; %s is left to the agent's resend", HELD_MAX, message[0])
            message[2].set_result(None)
            return
        self._held.append(message)
        self._held_added.set()

    def _handle(self, messages: list[tuple[str, bytes]], alone: bool = False) -> bool | None:
        """Store messages in one transaction and publish what follows; False when the store is full or unreachable
        (nothing was committed), None when it failed otherwise. `alone` (one message): a message the store fails
        on otherwise is logged and left to its agent's resend (True: PUBACKed, not acked)."""
        seen, stored, started = self.ingest.incident_events, self.ingest.events_stored, time.perf_counter()
        held = self.ingest.batches_held
        now = self.clock()
        try:
            outs = self.ingest.handle_many([(topic, payload, now) for topic, payload in messages])
        except (StorageFull, StoreUnavailable) as exc:
            if self.storage_fault is None:
                log.error("store not writable (%s): holding messages unacknowledged until it is", exc)
            self.storage_fault = str(exc)
            for topic, _ in messages:
                self.metrics.observe_message(topic, time.perf_counter() - started, 0, failed=True)
            return False
        except Exception:
            if not alone:
                return None
            log.exception("could not store message on %s", messages[0][0])
            self.metrics.observe_message(messages[0][0], time.perf_counter() - started, 0, failed=True)
            return True
        share = (time.perf_counter() - started) / len(messages)
        for i, (topic, _) in enumerate(messages):
            self.metrics.observe_message(topic, share, self.ingest.events_stored - stored if i == 0 else 0, False)
            if topic.endswith("/birth"):
                self._liveness_wake.set()  # a new agent (or boot) has a deadline of its own
        if self.ingest.batches_held != held:
            self._liveness_wake.set()  # a held batch has a birth wait of its own
        for out in outs:
            self._publish(out)
        if self.ingest.incident_events != seen:
            self._route()
        return True

    async def _retry_held(self) -> None:
        """Commit held messages in arrival order, with backoff while the store stays full or unreachable."""
        wait = HELD_RETRY_FIRST_S
        while True:
            if not self._held:
                self._held_added.clear()
                await self._held_added.wait()
                wait = HELD_RETRY_FIRST_S
            await asyncio.sleep(wait)
            while self._held:
                topic, payload, future = self._held[0]
                if not self._handle([(topic, payload)], alone=True):
                    wait = min(wait * 2, HELD_RETRY_MAX_S)
                    break
                self._held.popleft()
                future.set_result(None)
            if not self._held and self.storage_fault is not None:
                log.warning("store writable again: the held messages are committed and acked")
                self.storage_fault = None

    def _publish(self, publications: list[Publication]) -> None:
        for p in publications:
            try:
                future = self.mqtt.publish(p.topic, p.payload, qos=p.qos, retain=p.retain)
            except BrokerError as exc:
                log.warning("could not publish to %s: %s", p.topic, exc)
                continue
            future.add_done_callback(_log_failure)

    async def _watch_liveness(self) -> None:
        """Open a gap for each agent whose heartbeats are overdue, and store the batches held past their birth
        wait: checked at the next agent's deadline or birth wait's end, on a birth or a hold, at most
        `liveness_every_s` apart."""
        while True:
            started = self.clock()
            due: int | None = started
            try:
                seen = self.ingest.incident_events
                self._publish(self.ingest.release_expired(started))
                if self.ingest.incident_events != seen:
                    self._route()
                gaps = self.ingest.check_liveness(started)
                for gap in gaps:
                    self.router.agent_silent(gap)
                if gaps:
                    self._work_written()
                due = min(
                    (t for t in (self.ingest.next_liveness_check, self.ingest.next_hold_check) if t is not None),
                    default=None,
                )
            except Exception:
                log.exception("liveness check failed")
            await self._liveness_wake.wait(sleep_s(started, self.clock(), due, self.liveness_every_s))


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("publish not acknowledged by the broker: %s", future.exception())
