"""The running agent: scheduled probe rounds → debounce → incidents → outbox → forwarder.

Targets that share a poll interval share one timer, and each tick polls them concurrently, so 200 targets at
1 s cost one wake-up per second, not 200; a slow target delays only itself (and the targets on its Modbus line,
which are polled one after another). Everything a result produces (events and the state snapshots that decide
what the next result emits) is written in one outbox transaction: after a kill -9 the agent resumes exactly
where its last commit left it, without repeating or losing an incident. A commit the outbox cannot take (disk
full) waits in memory (agent/recorder.py); one that cannot be kept at all rolls the state machine back to the
last commit kept.

The forwarder, each poll loop and the housekeeping loop run under one supervisor (linewarden/supervise.py):
a crash is logged with its traceback, counted and restarted with backoff; repeated crashes end `run()` with
SupervisorGaveUp, and `linewarden agent run` exits 1 so the service manager restarts the process.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from agent import heap
from agent.forwarder import Forwarder
from agent.metrics import MetricsAggregator
from agent.outbox import Outbox, wall_ms
from agent.probes.base import Probe, ProbeResult
from agent.probes.context import ProbeContext
from agent.probes.registry import hung, make_probe, polled
from agent.recorder import Recorder
from linewarden import __version__
from linewarden.certs import expiring
from linewarden.changes import ChangeDetector, VersionReporter
from linewarden.config.agent import AgentConfig
from linewarden.config.targets import TargetConfig
from linewarden.debounce import Debouncer, Transition
from linewarden.domain import ProbeKind, State
from linewarden.errors import LinewardenError, StoreError
from linewarden.incidents import Emitted, IncidentTracker, TargetRef
from linewarden.mqtt import MqttClient
from linewarden.production import load_production_calendar
from linewarden.supervise import RestartPolicy, Supervisor
from linewarden.wire import Birth, CertExpiry, HeartbeatBody, TargetInfo, WireModel

if TYPE_CHECKING:
    from agent.metrics_http import MetricsServer

log = logging.getLogger("linewarden.agent")

HOUSEKEEPING_S = 1.0
LINK_REFRESH_MS = 30_000  # how often `agent status` learns the broker link is still as it was
_STATE_KEY = "runtime"
RESTART_POLICY = RestartPolicy()


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def config_hash(config_path: Path) -> str:
    return hashlib.sha256(config_path.read_bytes()).hexdigest()[:16]


@dataclass
class TargetSlot:
    cfg: TargetConfig
    probe: Probe[Any]
    debouncer: Debouncer
    interval_s: float
    last: ProbeResult | None = None
    last_at_ms: int | None = None


@dataclass
class _Lane:
    """Polls that take turns, run one after another by one task: of the targets on one Modbus line, or of one
    target."""

    queue: deque[_Poll] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None  # while the queue is run
    polling: _Poll | None = None  # the poll under way


@dataclass(eq=False, slots=True)
class _Poll:
    """One poll queued on its lane by a poll loop: the tick that queued it, its budget and deadline (monotonic),
    and its loop's polls under way (`running`, which it leaves when done) and exceptions (`failed`)."""

    slot: TargetSlot
    lane: _Lane
    at_ms: int
    budget: float
    deadline: float
    running: dict[str, _Poll]
    failed: list[Exception]
    expired: bool = False  # ended for its budget
    abandoned: bool = False  # its loop stopped: no result


class Agent:
    """One agent process. `await run()` until `await stop()` (or cancellation)."""

    def __init__(
        self,
        cfg: AgentConfig,
        config_path: Path,
        *,
        clock_ms: Callable[[], int] = wall_ms,
        mqtt: MqttClient | None = None,
        probe_context: ProbeContext | None = None,
    ) -> None:
        self.cfg = cfg
        self._clock_ms = clock_ms
        self._calendar = load_production_calendar(cfg, config_path)
        self._config_hash = config_hash(config_path)
        self.outbox = Outbox(cfg.agent.data_dir / "outbox.db", cfg.outbox, clock_ms)
        self.boot = secrets.token_hex(6)
        self._boot_seq = self.outbox.stats().next_seq  # the first seq this boot writes (in every birth)
        self._context = probe_context or ProbeContext(opcua_trust=cfg.opcua_trust())
        self.slots: dict[str, TargetSlot] = {}
        for target in cfg.targets:
            self.slots[target.id] = TargetSlot(
                cfg=target,
                probe=make_probe(target, cfg.defaults, self._context),
                debouncer=Debouncer(
                    target.fail_threshold or cfg.defaults.fail_threshold,
                    target.recover_threshold or cfg.defaults.recover_threshold,
                ),
                interval_s=(target.interval or cfg.defaults.interval).total_seconds(),
            )
        self._tracker = IncidentTracker(
            {t.id: TargetRef(t.asset, cfg.asset(t.asset).criticality) for t in cfg.targets},
            cfg.severity,
            self._in_production,
            cfg.flap,
            lambda: uuid.uuid4().hex,
            site_link_hold_ms=_ms(max(s.interval_s for s in self.slots.values())),
        )
        self._changes = ChangeDetector()
        self._versions = VersionReporter()
        self._metrics = MetricsAggregator()
        self.forwarder = Forwarder(cfg, self.outbox, self._birth, self.boot, clock_ms, mqtt)
        self._stopping = asyncio.Event()
        self._stop_reason = "stopped"
        self.on_result: Callable[[str, ProbeResult], None] | None = None  # the opt-in metrics endpoint
        self.metrics_port: int | None = None  # bound, while it serves
        self._restored: list[Emitted] = self._restore()
        self.recorder = Recorder(
            self.outbox, cfg.outbox.memory_buffer_events, _STATE_KEY, self._snapshot(), clock_ms,
            on_fault=self.forwarder.announce,
        )
        self.supervisor = Supervisor(RESTART_POLICY)
        self._lanes: dict[object, _Lane] = {}  # by Probe.line()

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        log.info(
            "agent %s/%s starting: %d targets, epoch %s, outbox depth %d",
            self.cfg.agent.site,
            self.cfg.agent.id,
            len(self.slots),
            self.outbox.epoch,
            self.outbox.stats().depth,
        )
        if self._restored:
            self._commit(self._clock_ms(), self._restored)
            self._restored = []
        groups: dict[float, list[TargetSlot]] = {}
        for slot in self.slots.values():
            groups.setdefault(slot.interval_s, []).append(slot)
        sup = self.supervisor
        tasks = [sup.spawn("forwarder", self.forwarder.run)]
        tasks += [
            sup.spawn(f"poll-{interval:g}s", functools.partial(self._poll_loop, interval, slots))
            for interval, slots in sorted(groups.items())
        ]
        tasks.append(sup.spawn("housekeeping", self._housekeeping))
        metrics = await self._serve_metrics()
        stopping = asyncio.create_task(self._stopping.wait())
        failed = asyncio.create_task(sup.failed())
        try:
            await asyncio.wait([stopping, failed], return_when=asyncio.FIRST_COMPLETED)
            if failed.done():
                self._stop_reason = "crashed"
                failed.result()  # raises SupervisorGaveUp
        finally:
            if metrics is not None:
                await metrics.stop()
            for task in [stopping, failed, *tasks[1:]]:
                task.cancel()
            await asyncio.gather(stopping, failed, *tasks[1:], return_exceptions=True)
            lanes = [lane.task for lane in self._lanes.values() if lane.task is not None]
            await asyncio.gather(*lanes, return_exceptions=True)  # cancelled with the poll loops' polls
            await self.forwarder.stop(self._stop_reason)
            tasks[0].cancel()  # done by now, or waiting out a restart backoff that is moot
            await asyncio.gather(tasks[0], return_exceptions=True)
            await self._context.close()
            self.outbox.close()
            log.info("agent stopped")

    async def _serve_metrics(self) -> MetricsServer | None:
        port = self.cfg.agent.metrics_port
        if port is None:
            return None
        from agent.metrics_http import AgentMetrics, MetricsServer  # loads prometheus_client only when asked

        server = MetricsServer(AgentMetrics(self, self._clock_ms), port)
        self.metrics_port = await server.start()
        return server

    async def stop(self, reason: str = "stopped") -> None:
        self._stop_reason = reason
        self._stopping.set()

    # ------------------------------------------------------------ rounds

    async def _poll_loop(self, interval_s: float, slots: list[TargetSlot]) -> None:
        """One timer for all targets of one interval. Each tick queues, on the target's lane (`Probe.line()`), a
        poll of every target whose previous poll has finished: the targets on one Modbus line, whatever their
        interval, share one lane; every other target has its own. One task per lane runs its queue, one poll
        after another, and folds in each result as soon as it arrives: the targets on a line take turns without
        queueing on the line's lock, and a target that hangs until its budget delays only the targets on its own
        line, never the others. A poll that raised (a bug, not a probe failure: those are results) ends the loop
        with its exception at the next tick, so the supervisor logs and counts it.

        The poll budget (`registry.safe_poll`'s rule) counts from the tick that queued the poll and is kept by
        this loop rather than by a timer per poll: it wakes at the earliest deadline of its polls queued or under
        way, if that comes before its next tick, and ends each one past its deadline (a poll under way is
        cancelled, a queued one taken off its lane), which then reports "no result within" its budget."""
        lanes = [self._lanes.setdefault(slot.probe.line(), _Lane()) for slot in slots]
        running: dict[str, _Poll] = {}  # this loop's polls, queued or under way, by target
        failed: list[Exception] = []
        next_at = time.monotonic()
        try:
            while True:
                if failed:
                    raise failed[0]
                now_ms = self._clock_ms()
                started = time.monotonic()
                for slot, lane in zip(slots, lanes, strict=True):
                    if slot.cfg.id not in running:
                        budget = slot.probe.poll_budget()
                        poll = _Poll(slot, lane, now_ms, budget, started + budget, running, failed)
                        running[slot.cfg.id] = poll
                        lane.queue.append(poll)
                        if lane.task is None:
                            lane.task = asyncio.create_task(self._serve(lane))
                next_at += interval_s
                while True:
                    now = time.monotonic()
                    wake = next_at
                    for poll in list(running.values()):
                        if poll.expired:
                            continue
                        if poll.deadline <= now:
                            self._expire(poll)
                        elif poll.deadline < wake:
                            wake = poll.deadline
                    if wake >= next_at:
                        break
                    await asyncio.sleep(wake - now)
                delay = next_at - now
                if delay < 0:  # the loop fell behind (a busy host): skip the missed ticks instead of bursting
                    next_at = now
                    delay = 0
                await asyncio.sleep(delay)
        finally:
            for poll in running.values():  # the loop is stopping: its polls end without a result
                poll.abandoned = True
                if poll.lane.polling is not poll:
                    poll.lane.queue.remove(poll)
                elif not poll.expired:
                    assert poll.lane.task is not None
                    poll.lane.task.cancel()

    def _expire(self, poll: _Poll) -> None:
        """End a poll past its budget: cancel it if under way, else take it off its lane."""
        poll.expired = True
        lane = poll.lane
        if lane.polling is poll:
            assert lane.task is not None
            lane.task.cancel()
            return
        lane.queue.remove(poll)
        del poll.running[poll.slot.cfg.id]
        self.process_round(poll.at_ms, [(poll.slot.cfg.id, hung(poll.budget))])

    async def _serve(self, lane: _Lane) -> None:
        """Run the lane's queue, one poll after another, until it is empty."""
        try:
            while lane.queue:
                poll = lane.polling = lane.queue.popleft()
                target_id = poll.slot.cfg.id
                try:
                    result = await polled(poll.slot.probe, poll.at_ms / 1000)
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if not (poll.expired or poll.abandoned) or task is None or task.cancelling() != 1:
                        raise  # not ours: the event loop is closing
                    task.uncancel()
                    result = hung(poll.budget)
                finally:
                    lane.polling = None
                if poll.abandoned:
                    continue
                del poll.running[target_id]
                try:
                    self.process_round(poll.at_ms, [(target_id, result)])
                except Exception as exc:
                    poll.failed.append(exc)
        finally:
            lane.task = None

    def process_round(self, now_ms: int, results: Iterable[tuple[str, ProbeResult]]) -> None:
        """Fold results (one target's, or several) into states, incidents and events; commit them in one transaction."""
        transitions: dict[str, Transition] = {}
        extra: list[Emitted] = []
        for target_id, result in results:
            slot = self.slots[target_id]
            slot.last, slot.last_at_ms = result, now_ms
            if self.on_result is not None:
                self.on_result(slot.cfg.type, result)
            reason = result.reason or ("ok" if result.state == State.UP else result.state.value)
            transition = slot.debouncer.observe(result.state, now_ms, reason, result.cause, result.configuration)
            if transition is not None:
                transitions[target_id] = transition
                self._log_transition(target_id, transition)
            if result.versions:
                extra += [("change_detected", c) for c in self._changes.observe(
                    target_id, slot.cfg.asset, result.versions, now_ms
                )]
                if slot.cfg.report_versions:
                    extra += [("version_observed", v) for v in self._versions.observe(
                        target_id, slot.cfg.asset, result.versions, now_ms
                    )]
            if self.cfg.agent.metrics:  # the minute's bodies go out from housekeeping, all in one commit
                self._metrics.add(target_id, result.state, result.latency_ms, now_ms)
        # Without a transition there is nothing for the tracker; housekeeping ticks it every second.
        emitted = self._tracker.process(now_ms, transitions, self._pending_fail()) if transitions else []
        events = emitted + extra
        if events or transitions:
            self._commit(now_ms, events, transitions.keys())

    async def _housekeeping(self) -> None:
        last_heartbeat = 0
        heartbeat_ms = _ms(self.cfg.agent.heartbeat_interval.total_seconds())
        saved: tuple[object, ...] | None = None
        saved_ms = 0
        trimmed_at = time.monotonic()
        while True:
            now_ms = self._clock_ms()
            self.recorder.retry()
            status = self.forwarder.status()
            health = {
                "outbox_fault": self.recorder.fault,
                "unkept_total": self.recorder.unkept_total,
                "rejected_acks": status.rejected_acks,
                "task_crashes": dict(self.supervisor.crashes),
            }
            announced = self.forwarder.maintenance
            now_saved = (status.connected, status.broker, status.collector_online, announced,
                         *map(str, health.values()))  # fmt: skip
            if now_saved != saved or now_ms - saved_ms >= LINK_REFRESH_MS:
                link = {
                    "connected": status.connected,
                    "broker": status.broker,
                    "collector_online": status.collector_online,
                    "at_ms": now_ms,
                    "certificates": [c.as_dict() for c in self.forwarder.certificates()],
                    "maintenance": None if announced is None else msgspec.to_builtins(announced),
                }
                try:
                    self.outbox.append_many([], state={"link": link, "health": health})
                    saved, saved_ms = now_saved, now_ms
                except StoreError as exc:  # for `agent status` only: the next tick tries again
                    log.debug("link and health not saved: %s", exc)
            events: list[Emitted] = list(self._tracker.tick(now_ms, self._pending_fail()))
            events += [("metrics", m) for m in self._metrics.flush(now_ms)]
            if now_ms - last_heartbeat >= heartbeat_ms:
                last_heartbeat = now_ms
                states = {t: s.debouncer.state for t, s in self.slots.items()}
                depth = oldest = None
                if self.cfg.agent.outbox_figures:  # a counter and one primary-key read (bench/outbox_figures.py)
                    outbox = self.outbox.stats()
                    depth, oldest = outbox.depth, outbox.oldest_ts
                events.append(("heartbeat", HeartbeatBody(
                    interval_s=max(1, heartbeat_ms // 1000), states=states, certificates=self._expiring(now_ms),
                    outbox_depth=depth, oldest_unacked_at=oldest,
                )))  # fmt: skip
                if self.recorder.fault is not None:
                    # The heartbeat waits in memory: a birth naming the fault tells the collector we are alive.
                    self.forwarder.announce()
            if events:
                self._commit(now_ms, events)
            if time.monotonic() - trimmed_at >= heap.TRIM_EVERY_S:
                trimmed_at = time.monotonic()
                heap.trim()
            await asyncio.sleep(HOUSEKEEPING_S)

    def _expiring(self, now_ms: int) -> list[CertExpiry] | None:
        """The broker link's certificates that expire within the configured days, for the heartbeat."""
        tls = self.cfg.broker.tls
        if tls is None:
            return None
        soon = expiring(self.forwarder.certificates(), now_ms, tls.expiry_warning_days)
        return [CertExpiry(role=c.role.value, subject=c.subject, not_after=c.not_after_ms) for c in soon] or None

    def _commit(self, now_ms: int, events: list[Emitted], targets: Iterable[str] = ()) -> None:
        """Record what a round or tick produced with the state that produced it; when it cannot be kept,
        roll the state machine back to the last commit kept."""
        pending = [(kind, body, now_ms) for kind, body in events]
        if not self.recorder.commit(pending, self._snapshot(), set(targets), now_ms):
            self._load(self.recorder.accepted, now_ms)
            return
        self.forwarder.wake()
        for kind, body in events:
            if kind.startswith("incident_"):
                self._log_incident(kind, body)

    # ------------------------------------------------------------ state

    def _pending_fail(self) -> set[str]:
        return {t for t, s in self.slots.items() if s.debouncer.failing}

    def _in_production(self, at_ms: int) -> bool:
        return True if self._calendar is None else self._calendar.is_open(at_ms)

    def _snapshot(self) -> dict[str, Any]:
        return {
            "debouncers": {t: s.debouncer.snapshot() for t, s in self.slots.items()},
            "incidents": self._tracker.snapshot(),
            "changes": self._changes.snapshot(),
            "versions": self._versions.snapshot(),
        }

    def _restore(self) -> list[Emitted]:
        saved = self.outbox.get_state(_STATE_KEY)
        if not isinstance(saved, dict):
            return []
        try:
            return self._load(saved, self._clock_ms())
        except LinewardenError as exc:
            log.warning("ignoring saved agent state (%s); starting from UNKNOWN", exc)
            return []

    def _load(self, saved: dict[str, Any], now_ms: int) -> list[Emitted]:
        """Set the state machine to a `_snapshot()`; returns what the tracker emits for vanished targets."""
        for target_id, snap in saved.get("debouncers", {}).items():
            if target_id in self.slots:
                self.slots[target_id].debouncer.restore(snap)
        self._changes.restore(saved.get("changes", {}))
        self._versions.restore(saved.get("versions", {}))
        return self._tracker.restore(saved.get("incidents", {}), now_ms)

    def _birth(self) -> Birth:
        return Birth(
            agent=self.cfg.agent.id,
            site=self.cfg.agent.site,
            epoch=self.outbox.epoch,
            boot=self.boot,
            ts=self._clock_ms(),
            version=__version__,
            config_hash=self._config_hash,
            heartbeat_interval_s=max(1, int(self.cfg.agent.heartbeat_interval.total_seconds())),
            targets=[
                TargetInfo(
                    id=t.id, kind=ProbeKind(t.type), asset=t.asset, criticality=self.cfg.asset(t.asset).criticality
                )
                for t in self.cfg.targets
            ],
            acked_through=self.outbox.stats().last_ack_seq,
            boot_seq=self._boot_seq,
            outbox_fault=self.recorder.fault,
        )

    # ------------------------------------------------------------ logging: edges only

    @staticmethod
    def _log_transition(target_id: str, tr: Transition) -> None:
        level = logging.INFO if tr.to != State.UNKNOWN or tr.from_ != State.UNKNOWN else logging.DEBUG
        why = "" if tr.to == State.UP else f" ({tr.reason})"
        log.log(level, "%s: %s -> %s%s", target_id, tr.from_.value, tr.to.value, why)

    @staticmethod
    def _log_incident(kind: str, body: WireModel) -> None:
        given = {k: v for k, v in msgspec.to_builtins(body).items() if v is not None}
        log.info("%s %s", kind.replace("_", " "), msgspec.json.encode(given).decode())
