"""Ingest: MQTT messages in, one store transaction for those that arrived together, and what to publish once it
is committed.

Transport-free: the service hands in (topic, payload, received_at) and publishes the returned
`Publication`s. A payload that is not valid wire protocol goes to the dead-letter table with the reason;
it never stops ingest. An event that names what its agent does not own, or a seq beyond its plausible range, is
dead-lettered by itself and the rest of its batch is stored (`collector.admission`). Database failures propagate:
nothing is acked, so the agent sends again.

The ack is computed in the transaction that stores, from what the store holds, never from this process's
memory: with several collectors sharing the ingest, one agent's batches land on different collectors, and each
first takes the agent's ack row lock (`Writer.lock_ack`), so the later one sees the earlier one's commit.

A batch of an epoch and boot whose birth was never stored (it took another route through a broker cluster) is
held in the store for that birth, within bounds, and stored in the birth's transaction; one held past the
birth wait is stored as any batch of an agent with no birth (docs/ingest.md, "Batches that come before their
birth"). The birth and the hold both take the epoch's ack row first, so neither misses the other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter

from collector import admission, liveness
from collector.store.base import Store, Writer
from collector.store.rows import AgentRow, GapRow
from linewarden.config.collector import MIB, LivenessConfig
from linewarden.errors import WireError
from linewarden.wire import (
    Ack,
    Birth,
    Death,
    Event,
    EventBatch,
    ack_topic,
    decode,
    encode,
    events_topic,
    parse_agent_topic,
)

log = logging.getLogger(__name__)

_INCIDENT_TYPES = frozenset({"incident_opened", "incident_updated", "incident_resolved"})
# Runs of only these event types are stored together with the group's other such runs: what they store and read
# is their own agent's (events, state changes, the agent row, acks, gaps), where other types read or write rows
# that other agents' events may touch (incidents and their owners).
_GROUPED_TYPES = frozenset({"heartbeat", "metrics", "state_change"})
_ts = attrgetter("ts")
_seq = attrgetter("seq")
_type = attrgetter("type")
# Of a payload over the size limit, the dead letter keeps this many first bytes (and says the size).
OVERSIZE_KEPT_BYTES = 1024
# Batches held for their boot's birth (docs/limits.md): at most this many of one agent, and in all.
HELD_PER_AGENT = 20
HELD_IN_ALL = 1000
BIRTH_WAIT_MS = 10 * 60_000  # the default of `[ingest] birth_wait`


@dataclass(frozen=True)
class Publication:
    topic: str
    payload: bytes
    retain: bool
    qos: int = 1


def _ack(site: str, agent: str, epoch: str, through: int, boot: str | None = None) -> Publication:
    return Publication(ack_topic(site, agent), encode(Ack(epoch=epoch, through=through, boot=boot)), retain=True)


class Ingest:
    """Handles agent messages for one collector. `watching_since`: when this collector started listening."""

    def __init__(
        self,
        store: Store,
        config: LivenessConfig,
        watching_since: int,
        max_payload_bytes: int = MIB,
        birth_wait_ms: int = BIRTH_WAIT_MS,
    ) -> None:
        self.store = store
        self.max_payload_bytes = max_payload_bytes
        self.birth_wait_ms = birth_wait_ms
        self.held_per_agent, self.held_in_all = HELD_PER_AGENT, HELD_IN_ALL
        self.missed = config.missed_heartbeats
        self.skew_threshold_ms = int(config.clock_skew_threshold.total_seconds() * 1000)
        self.max_seq_ahead = config.max_seq_ahead
        self.watching_since = watching_since
        self.incident_events = 0  # incident events stored so far: the router runs only when this moves
        self.events_stored = 0
        self.on_dead_letter: Callable[[str], None] = lambda reason: None  # metrics: called with each reason
        self.next_liveness_check: int | None = None  # set by check_liveness
        self.on_new_agent: Callable[[str, str], None] = lambda site, agent: None  # (site, agent) first born
        # metrics: called per batch with "held", "released" (its birth came), "expired" or "over_limit"
        self.on_held: Callable[[str], None] = lambda outcome: None
        self.batches_held = 0  # batches held so far: the service then looks for the next expiry
        self.next_hold_check: int | None = None  # set by release_expired

    def handle(self, topic: str, payload: bytes, received_at: int) -> list[Publication]:
        """One message, one transaction; what to publish once it is committed."""
        return self.handle_many([(topic, payload, received_at)])[0]

    def handle_many(self, messages: Sequence[tuple[str, bytes, int]]) -> list[list[Publication]]:
        """Messages (topic, payload, received_at) in one transaction, one commit for all: per message, what to
        publish once committed. Any failure rolls back all of them (the caller may then try them one by one).

        One agent's consecutive event batches (same epoch and boot) are stored as one run (`_store_run`), with one
        ack for the run: it is published with the run's last message, the others publish none."""
        counts = self.incident_events, self.events_stored, self.batches_held
        try:
            # Stored agent by agent (each agent's messages in their order), so that collectors sharing the ingest
            # take the agents' ack rows in one order and never deadlock on them.
            order = sorted(range(len(messages)), key=lambda i: _agent_of(messages[i][0]))
            done: dict[int, list[Publication]] = {}
            with self.store.transaction() as tx:
                runs: list[list[_Batch]] = []  # the runs since the last birth or death
                run: list[_Batch] = []
                for i in order:
                    topic, payload, received_at = messages[i]
                    if not _is_events(topic):  # a birth or death comes after what its agent sent before it
                        self._store_runs(tx, [*runs, run] if run else runs, done)
                        runs, run = [], []
                    out = self._one(tx, topic, payload, received_at)
                    if run and not (isinstance(out, EventBatch) and run[-1].continued_by(out, received_at)):
                        runs.append(run)
                        run = []
                    if isinstance(out, EventBatch):
                        run.append(_Batch(i, topic, out, received_at, payload))
                    else:
                        done[i] = out
                self._store_runs(tx, [*runs, run] if run else runs, done)
            return [done[i] for i in range(len(messages))]
        except BaseException:
            self.incident_events, self.events_stored, self.batches_held = counts
            raise

    def _one(self, tx: Writer, topic: str, payload: bytes, received_at: int) -> list[Publication] | EventBatch:
        """Handle a birth, death or bad message; an event batch whose sender checks out is returned, to be stored
        with the run it belongs to."""
        site: str | None = None
        agent: str | None = None
        try:
            site, agent, kind = parse_agent_topic(topic)
            if len(payload) > self.max_payload_bytes:  # checked before anything parses it
                reason = f"payload of {len(payload)} bytes is over the limit of {self.max_payload_bytes} bytes"
                self._dead_letter(tx, topic, payload[:OVERSIZE_KEPT_BYTES], reason, received_at, site, agent)
                return []
            if kind == "birth":
                return self._birth(tx, topic, payload, decode(Birth, payload), site, agent, received_at)
            if kind == "death":
                self._death(tx, decode(Death, payload), site, agent, received_at)
                return []
            if kind == "events":
                batch = decode(EventBatch, payload)
                self._check_sender(site, agent, batch)
                return batch
            raise WireError(f"not a topic the collector ingests: {kind!r}")
        except WireError as exc:
            self._dead_letter(tx, topic, payload, str(exc), received_at, site, agent)
            return []

    def _dead_letter(
        self, tx: Writer, topic: str, payload: bytes, reason: str, at: int, site: str | None, agent: str | None
    ) -> None:
        log.warning("dead letter on %s: %s", topic, reason)
        tx.add_dead_letter(topic, payload, reason, at, site, agent)
        self.on_dead_letter(reason)

    @staticmethod
    def _check_sender(site: str, agent: str, msg: Birth | Death | EventBatch) -> None:
        if (msg.site, msg.agent) != (site, agent):
            raise WireError(f"payload names {msg.site}/{msg.agent}, topic names {site}/{agent}")

    # ------------------------------------------------------------ messages

    def _birth(
        self, tx: Writer, topic: str, payload: bytes, birth: Birth, site: str, agent: str, received_at: int
    ) -> list[Publication]:
        self._check_sender(site, agent, birth)
        acked = tx.lock_ack(site, agent, birth.epoch, create=False)
        if acked is None:  # created now (at 0), so a batch of the epoch held meanwhile is seen once committed
            tx.lock_ack(site, agent, birth.epoch, create=True)
        before = tx.agent(site, agent)
        if before is None:
            self.on_new_agent(site, agent)
        elif before.boot != birth.boot:
            self._restarted(tx, before, birth)
        tx.record_birth(birth, received_at)
        floor = self._floor(tx, topic, payload, birth, received_at, acked)
        through = tx.advance_ack(site, agent, birth.epoch, floor=floor)
        self._measure_skew(tx, site, agent, birth.ts - received_at, before, from_birth=True)
        if self._release(tx, (site, agent, birth.epoch, birth.boot), "released"):
            through = tx.acked_through(site, agent, birth.epoch)
        return [_ack(site, agent, birth.epoch, through, boot=birth.boot)]

    def _floor(self, tx: Writer, topic: str, payload: bytes, birth: Birth, received_at: int, acked: int | None) -> int:
        """The birth's acked_through, unless it lies implausibly far beyond the epoch's ack `acked`
        (dead-lettered, the birth applied without it). A new epoch's (`acked` None) floor may be anything: a
        restored outbox keeps its seqs."""
        if acked is None or birth.acked_through <= acked + self.max_seq_ahead:
            return birth.acked_through
        reason = f"birth acked_through {birth.acked_through}: more than {self.max_seq_ahead} beyond the epoch's ack"
        reason += f" ({acked}), ignored"
        log.warning("dead letter on %s: %s", topic, reason)
        tx.add_dead_letter(topic, payload, reason, received_at, birth.site, birth.agent)
        self.on_dead_letter(reason)
        return 0

    def _restarted(self, tx: Writer, before: AgentRow, birth: Birth) -> None:
        """A new boot: the old one stopped watching at its last heartbeat; the new one watches from birth."""
        open_gap = tx.open_gap_of(before.site, before.agent)
        if open_gap is not None:
            if birth.ts > open_gap.start_at:
                tx.set_gap(open_gap, open_gap.start_at, birth.ts)
            else:
                tx.drop_gap(open_gap)
            return
        start = liveness.last_watched(
            before, tx.last_event_at(before.site, before.agent, before.boot, liveness.last_watched(before))
        )
        if birth.ts > start:
            tx.add_gap(before.site, before.agent, start, birth.ts, liveness.REASON_RESTARTED, before.boot)

    def _death(self, tx: Writer, death: Death, site: str, agent: str, received_at: int) -> None:
        self._check_sender(site, agent, death)
        known = tx.agent(site, agent)
        # A death of an earlier boot (a Will delivered after the agent came back) changes nothing.
        if known is None or known.boot != death.boot:
            return
        tx.record_death(site, agent, death.ts, death.reason, received_at)
        if tx.open_gap_of(site, agent) is None:
            reason = f"{liveness.REASON_STOPPED}: {death.reason}"
            last = tx.last_event_at(site, agent, death.boot, liveness.last_watched(known))
            tx.open_gap(site, agent, liveness.last_watched(known, last), reason, death.boot)
        log.info("agent %s/%s stopped: %s", site, agent, death.reason)

    def _store_runs(
        self, tx: Writer, runs: list[list[_Batch]], done: dict[int, list[Publication]], hold: bool = True
    ) -> None:
        """Store runs of different agents, or of one agent's epochs and boots, in agent order, in stretches of
        distinct agents. For each stretch: each agent's ack row and then its agent row are taken, in agent order,
        as when each run is stored alone; then what admission reads is read for all its runs at once. With `hold`,
        a run whose epoch and boot were never born is held for that birth instead (`_hold`)."""
        start = 0
        while start < len(runs):
            agents = {runs[start][0].agent}
            end = start + 1
            while end < len(runs) and runs[end][0].agent not in agents:
                agents.add(runs[end][0].agent)
                end += 1
            locked = []
            for run in runs[start:end]:
                (site, agent), epoch, received_at = run[0].agent, run[0].batch.epoch, run[0].received_at
                # The agent's batches commit one after another (`lock_ack`), and its last_seen moves (`seen`).
                acked, known = tx.take_run(site, agent, epoch, received_at)
                if hold and not _born(tx, run[0].batch, known) and not (run := self._hold(tx, run, done)):
                    continue
                locked.append((run, acked, known))
            tx.prefetch_screening([
                (*r[0].agent, r[0].batch.epoch, min(map(_seq, events)), max(map(_seq, events)))
                for r, events in ((r, _events_of(r)) for r, _, _ in locked) if admission.reads_store(events)
            ])  # fmt: skip
            pending: dict[tuple[str, str], _Pending] = {}
            for run, acked, known in locked:
                self._store_run(tx, run, acked, known, done, pending)
            self._flush(tx, pending, done)
            start = end

    def _hold(self, tx: Writer, run: list[_Batch], done: dict[int, list[Publication]]) -> list[_Batch]:
        """Hold a run's batches for their boot's birth: PUBACKed once committed, not acked. Returns those over the
        bounds, to be stored as any batch of an agent with no birth."""
        left = []
        for b in run:
            batch = b.batch
            key = (batch.site, batch.agent, batch.epoch, batch.boot)
            seqs = (min(map(_seq, batch.events)), max(map(_seq, batch.events)))
            if tx.hold_batch(key, seqs, b.payload, b.received_at, self.held_per_agent, self.held_in_all):
                log.info("batch %d-%d of %s/%s boot %s held for its birth", *seqs, *key[:2], batch.boot)
                done[b.index] = []
                self.batches_held += 1
                self.on_held("held")
            else:
                log.warning(
                    "batch %d-%d of %s/%s boot %s not held (over %d of its agent or %d in all): stored without"
                    " its birth", *seqs, *key[:2], batch.boot, self.held_per_agent, self.held_in_all,
                )  # fmt: skip
                self.on_held("over_limit")
                left.append(b)
        return left

    def _release(
        self, tx: Writer, key: tuple[str, str, str, str], outcome: str, received_before: int | None = None
    ) -> bool:
        """Store the batches held for `key` (site, agent, epoch, boot; only those received before
        `received_before` when given) as if they came now, in seq order, each with the time it was received.
        The epoch's ack row must be locked. False when none was held."""
        held = tx.take_held(key, received_before)
        runs: list[list[_Batch]] = []
        topic = events_topic(*key[:2])
        for i, h in enumerate(held):
            try:
                b = _Batch(i, topic, decode(EventBatch, h.payload), h.received_at, h.payload)
            except WireError as exc:  # held by a collector whose wire models accepted it
                self._dead_letter(tx, topic, h.payload, str(exc), h.received_at, *key[:2])
                continue
            if runs and runs[-1][-1].continued_by(b.batch, h.received_at):
                runs[-1].append(b)
            else:
                runs.append([b])
            self.on_held(outcome)
        self._store_runs(tx, runs, {}, hold=False)
        return bool(held)

    def release_expired(self, now: int) -> list[Publication]:
        """Store the batches held longer than the birth wait as any batch of an agent with no birth (a state
        change naming a target its registry lacks is refused), in one transaction; the acks to publish once it
        is committed. Sets `next_hold_check`: when the batch held longest has waited long enough."""
        cutoff = now - self.birth_wait_ms
        acks: list[Publication] = []
        keys = self.store.held_boots(received_before=cutoff)
        if keys:
            counts = self.incident_events, self.events_stored
            try:
                with self.store.transaction() as tx:
                    for site, agent, epoch, boot in keys:
                        tx.lock_ack(site, agent, epoch, create=True)
                        if self._release(tx, (site, agent, epoch, boot), "expired", received_before=cutoff):
                            log.warning("%s/%s boot %s: no birth within the birth wait", site, agent, boot)
                            acks.append(_ack(site, agent, epoch, tx.acked_through(site, agent, epoch)))
            except BaseException:
                self.incident_events, self.events_stored = counts
                raise
        oldest = self.store.oldest_held()
        self.next_hold_check = None if oldest is None else oldest + self.birth_wait_ms + 1
        return acks

    def _store_run(
        self,
        tx: Writer,
        run: list[_Batch],
        acked: int,
        known: AgentRow | None,
        done: dict[int, list[Publication]],
        pending: dict[tuple[str, str], _Pending],
    ) -> None:
        """Store one agent's consecutive batches of one epoch and boot as one: one screening, one insert, one ack.
        `acked`: the epoch's ack, its row locked; `known`: the agent's row, its last_seen moved (None: no birth).

        The outcome is that of storing them one after another. Where it could differ, they are: a seq that is
        implausible against the ack before the run may be plausible against the ack after the batches before it
        (the run is stored batch by batch), and a monitoring gap is settled batch by batch (`_settle_gaps`).

        A run of heartbeats, metrics and state changes is screened here and left in `pending`, to be stored with
        the other such runs of its stretch (`_flush`): what they store and read is their own agent's."""
        first = run[0]
        site, agent, epoch, received_at = first.batch.site, first.batch.agent, first.batch.epoch, first.received_at
        topic = first.topic
        events = _events_of(run)
        verdict = admission.screen(tx, site, agent, epoch, events, strict=True, max_ahead=self.max_seq_ahead)
        if verdict.implausible and len(run) > 1:
            for b in run:  # each against the ack after the batches before it
                self._store_run(tx, [b], tx.lock_ack(site, agent, epoch, create=True) or 0, known, done, pending)
                self._flush(tx, pending, done)
            return
        for event, why in verdict.refused:
            reason = f"event seq {event.seq} ({event.type}): {why}"
            log.warning("refused from %s/%s: %s", site, agent, reason)
            tx.refuse_event(topic, site, agent, epoch, event, reason, received_at)
        for event, why in verdict.implausible:
            reason = f"event seq {event.seq} ({event.type}): {why}"
            log.warning("dead letter from %s/%s: %s", site, agent, reason)
            tx.add_dead_letter(topic, encode(event), reason, received_at, site, agent)
            self.on_dead_letter(reason)
        if _GROUPED_TYPES.issuperset(map(_type, verdict.admitted)):
            pending[(site, agent)] = _Pending(run, acked, known, verdict.admitted)
            return
        self._flush(tx, pending, done)
        new = tx.insert_events(site, agent, epoch, first.batch.boot, verdict.admitted, received_at)
        self._count(new)
        through = tx.advance_ack(site, agent, epoch, acked=acked)
        if known is not None:
            self._settle_gaps(tx, known, run, new)
            self._check_future(tx, known, run, verdict.admitted)
        self._acked(run, through, done)

    def _flush(self, tx: Writer, pending: dict[tuple[str, str], _Pending], done: dict[int, list[Publication]]) -> None:
        """Store the pending runs (screened, their agents' ack and agent rows taken), each kind of statement once
        for all of them: the known seqs, the insert, the acks, the look-up of monitoring gaps."""
        if not pending:
            return
        runs = list(pending.values())
        pending.clear()
        news = tx.insert_runs([(*p.key, p.admitted, p.received_at) for p in runs])
        throughs = tx.advance_acks([(*p.key[:3], p.acked) for p in runs])
        gapped = tx.agents_with_gaps(
            [(*p.key[:2], min(map(_ts, new))) for p, new in zip(runs, news, strict=True) if new and p.known]
        )
        for p, new, through in zip(runs, news, throughs, strict=True):
            self._count(new)
            if p.known is not None:
                if p.key[:2] in gapped:
                    self._settle_gaps(tx, p.known, p.run, new)
                self._check_future(tx, p.known, p.run, p.admitted)
            self._acked(p.run, through, done)

    def _count(self, new: list[Event]) -> None:
        self.events_stored += len(new)
        self.incident_events += sum(map(_INCIDENT_TYPES.__contains__, map(_type, new)))

    @staticmethod
    def _acked(run: list[_Batch], through: int, done: dict[int, list[Publication]]) -> None:
        """The run's ack goes with its last message; the others publish none."""
        for b in run:
            done[b.index] = []
        last = run[-1].batch
        done[run[-1].index] = [_ack(last.site, last.agent, last.epoch, through)]

    def _settle_gaps(self, tx: Writer, known: AgentRow, run: list[_Batch], new: list[Event]) -> None:
        """Settle the agent's monitoring gaps over the events a run stored, batch by batch, each batch with the
        events it stored first (as if each had come alone): which event is a gap's first evidence depends on it."""
        if not new:
            return
        if len(run) == 1:
            self._settle_batch(tx, known, run[0].batch, new)
            return
        # None of the batches' own look-ups could find a gap when this one, over the whole run, finds none.
        if not tx.gaps_of(known.site, known.agent, ending_after=min(map(_ts, new))):
            return
        stored = {id(e) for e in new}
        for b in run:
            self._settle_batch(tx, known, b.batch, [e for e in b.batch.events if id(e) in stored])

    def _settle_batch(self, tx: Writer, known: AgentRow, batch: EventBatch, new: list[Event]) -> None:
        if not new:
            return
        tolerance = liveness.tolerance_ms(known, self.missed)
        boot = batch.boot
        for gap in tx.gaps_of(known.site, known.agent, ending_after=min(map(_ts, new))):
            event_times = [e.ts for e in new if liveness.watched_by(gap.boot, boot, batch.epoch, known, e.seq)]
            if not event_times:
                continue
            end = gap.end_at
            if end is None:
                evidence = liveness.first_evidence(gap.start_at, event_times)
                if evidence is None:
                    continue
                if boot == gap.boot and liveness.continuous(gap.start_at, evidence, tolerance):
                    tx.drop_gap(gap)
                    continue
                end = evidence
            start = liveness.trimmed_start(gap.start_at, end, event_times, tolerance)
            if start >= end:
                tx.drop_gap(gap)
            elif (start, end) != (gap.start_at, gap.end_at):
                tx.set_gap(gap, start, end)

    def _check_future(self, tx: Writer, known: AgentRow, run: list[_Batch], admitted: list[Event]) -> None:
        """Replayed batches are old; only a batch from the future proves a clock ahead. Of a run's batches from the
        future, the last one's measure is kept (as when each is stored alone: each one sets it)."""
        received_at = run[0].received_at
        if max(map(_ts, admitted), default=received_at) - received_at <= self.skew_threshold_ms:
            return
        ids = {id(e) for e in admitted}
        future = None
        for b in run:
            ahead = max((e.ts for e in b.batch.events if id(e) in ids), default=received_at) - received_at
            if ahead > self.skew_threshold_ms:
                future = ahead
        if future is not None:
            self._measure_skew(tx, known.site, known.agent, future, known, from_birth=False)

    def _measure_skew(
        self, tx: Writer, site: str, agent: str, skew_ms: int, before: AgentRow | None, from_birth: bool
    ) -> None:
        flagged = abs(skew_ms) > self.skew_threshold_ms
        was_flagged = before is not None and before.skew_flagged
        if flagged and not was_flagged:
            log.warning(
                "agent %s/%s clock is off by %+d ms (threshold %d ms)", site, agent, skew_ms, self.skew_threshold_ms
            )
        elif was_flagged and not flagged and from_birth:
            log.info("agent %s/%s clock back within %d ms", site, agent, self.skew_threshold_ms)
        tx.set_skew(site, agent, skew_ms, flagged)

    # ------------------------------------------------------------ liveness

    def check_liveness(self, now: int) -> list[GapRow]:
        """Open a monitoring gap for every agent whose heartbeats are overdue; return the gaps opened. Sets
        `next_liveness_check`: when to check again (liveness.next_check_at)."""
        opened = []
        open_agents = {(g.site, g.agent) for g in self.store.open_gaps()}
        agents = self.store.agents()
        late = [
            a
            for a in agents
            if (a.site, a.agent) not in open_agents and liveness.overdue(a, now, self.missed, self.watching_since)
        ]
        silent = open_agents | {(a.site, a.agent) for a in late}
        self.next_liveness_check = liveness.next_check_at(agents, silent, now, self.missed, self.watching_since)
        if not late:
            return []
        with self.store.transaction() as tx:
            for a in late:
                start = liveness.last_watched(a)
                if tx.open_gap(a.site, a.agent, start, liveness.REASON_MISSED, a.boot):
                    log.warning("agent %s/%s silent: monitoring gap from %d", a.site, a.agent, start)
                    opened.append(GapRow(a.site, a.agent, start, None, liveness.REASON_MISSED, a.boot))
        return opened


@dataclass(frozen=True)
class _Batch:
    """An event batch whose sender checked out (its site and agent are the topic's), to be stored in its run."""

    index: int  # the message's place in its group
    topic: str
    batch: EventBatch
    received_at: int
    payload: bytes  # as received: what is held when its boot was never born

    @property
    def agent(self) -> tuple[str, str]:
        return (self.batch.site, self.batch.agent)

    def continued_by(self, other: EventBatch, received_at: int) -> bool:
        """Whether `other` joins this batch's run: the same agent, epoch and boot, received at the same time."""
        mine = self.batch
        return (mine.site, mine.agent, mine.epoch, mine.boot, self.received_at) == (
            other.site, other.agent, other.epoch, other.boot, received_at
        )


@dataclass(frozen=True)
class _Pending:
    """A screened run waiting to be stored with the group's others: its ack as locked, its agent row (None: no
    birth yet) and the events admission admitted."""

    run: list[_Batch]
    acked: int
    known: AgentRow | None
    admitted: list[Event]

    @property
    def key(self) -> tuple[str, str, str, str]:
        b = self.run[0].batch
        return (b.site, b.agent, b.epoch, b.boot)

    @property
    def received_at(self) -> int:
        return self.run[0].received_at


def _born(tx: Writer, batch: EventBatch, known: AgentRow | None) -> bool:
    """Whether the batch's epoch and boot were born: most batches are of the agent's latest birth."""
    if known is not None and (known.epoch, known.boot) == (batch.epoch, batch.boot):
        return True
    return tx.born(batch.site, batch.agent, batch.epoch, batch.boot)


def _events_of(run: list[_Batch]) -> Sequence[Event]:
    return run[0].batch.events if len(run) == 1 else [e for b in run for e in b.batch.events]


def _is_events(topic: str) -> bool:
    try:
        return parse_agent_topic(topic)[2] == "events"
    except WireError:
        return False


def _agent_of(topic: str) -> tuple[str, str]:
    try:
        site, agent, _ = parse_agent_topic(topic)
    except WireError:
        return ("", "")
    return (site, agent)
