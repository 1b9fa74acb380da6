"""Between the agent's state machine and its outbox: what happens when a commit cannot be written.

Rules:
- A commit is the events of one round (or housekeeping tick) and the state snapshot that produced them.
  While the outbox takes commits, each goes straight to disk: events and snapshot in one transaction.
- A commit refused for lack of space (the disk, or the outbox's `max_bytes`, is full) waits in memory, and
  every later commit queues behind it, in order. The queue is written in one transaction (with the latest
  snapshot) by `retry()`, which the agent's housekeeping calls every second (not every commit: a full disk
  must not cost a 10,000-event attempt per probe result).
- The queue holds at most `limit` events. Room is made by dropping the oldest droppable events (metrics,
  heartbeats) first. A commit that still does not fit, or that fails for another database error, is
  refused: `commit()` returns False and the agent rolls its state machine back to `accepted` (the snapshot
  of the last commit kept, on disk or in memory), so it never believes in an incident whose opening was not
  kept. That round's results are then not recorded; the next results are judged against the rolled-back
  state (a state change still pending is confirmed, and dated, by them).
- When the queue is written at last, a `gap` event goes first and says exactly what was not kept: the
  dropped events by type (the seqs they would have taken are the gap's range) and the rounds whose results
  were not recorded (targets and time range). An incident event is kept with every event before it, so no
  incident is ever closed on the wire without its opening.
- `fault` describes the trouble while it lasts (for the birth, hence the collector's agent list, and for
  `agent status`); `on_fault` is called when it starts, when events first go unkept, and when it ends.
  A process that dies meanwhile loses what waited in memory, and restarts from its last commit on disk,
  which is consistent with everything it ever sent.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.outbox import Lost, Outbox
from linewarden.errors import StorageFull, StoreError
from linewarden.timeutil import ms_to_dt
from linewarden.wire import DROPPABLE_TYPES, WireModel

log = logging.getLogger(__name__)

PendingEvent = tuple[str, WireModel, int]  # (type, body, ts)
_NAMED_TARGETS = 20  # a gap's reason names at most this many targets


@dataclass
class _Commit:
    events: list[PendingEvent]
    snapshot: dict[str, Any]


@dataclass
class _Unkept:
    dropped: Counter[str] = field(default_factory=Counter)
    rounds: int = 0
    targets: set[str] = field(default_factory=set)
    first_ms: int | None = None
    last_ms: int | None = None

    def __bool__(self) -> bool:
        return bool(self.dropped) or self.rounds > 0

    def refused(self, targets: Collection[str], now_ms: int) -> None:
        if not targets:
            return
        self.rounds += 1
        self.targets.update(targets)
        self.first_ms = now_ms if self.first_ms is None else self.first_ms
        self.last_ms = now_ms


def _iso(ms: int) -> str:
    return ms_to_dt(ms).isoformat(timespec="seconds")


class Recorder:
    """Commits of one agent: to the outbox, or into memory while it cannot be written. Use from one thread."""

    def __init__(
        self,
        outbox: Outbox,
        limit: int,
        state_key: str,
        accepted: dict[str, Any],
        clock_ms: Callable[[], int],
        on_fault: Callable[[], None] = lambda: None,
    ) -> None:
        self._outbox = outbox
        self._limit = limit
        self._state_key = state_key
        self.accepted = accepted
        self._clock_ms = clock_ms
        self.on_fault = on_fault
        self._waiting: list[_Commit] = []
        self._count = 0  # events waiting
        self._unkept = _Unkept()
        self._since_ms: int | None = None
        self._why = ""
        self.unkept_total = 0  # events dropped and rounds not recorded, over the process's life

    @property
    def fault(self) -> str | None:
        if self._since_ms is None:
            return None
        text = f"outbox not writable since {_iso(self._since_ms)} ({self._why}): {self._count} events wait in memory"
        if self._unkept:
            text += f"; not kept so far: {self._describe_unkept()}"
        return text[:500]

    @property
    def waiting(self) -> Counter[str]:
        """Events waiting in memory, by type."""
        return Counter(e[0] for c in self._waiting for e in c.events)

    def commit(
        self, events: Sequence[PendingEvent], snapshot: dict[str, Any], targets: Collection[str], now_ms: int
    ) -> bool:
        """Record one commit; False: refused, roll the state machine back to `accepted`."""
        if self._since_ms is None:
            try:
                self._outbox.append_many(events, state={self._state_key: snapshot})
                self.accepted = snapshot
                return True
            except StorageFull as exc:
                self._start_fault(exc, now_ms)
            except StoreError as exc:
                self._start_fault(exc, now_ms)
                self._refuse(events, targets, now_ms)
                return False
        return self._enqueue(list(events), snapshot, targets, now_ms)

    def retry(self) -> None:
        """Write what waits in memory (and the gap for what was not kept), if the outbox takes it now."""
        if self._since_ms is None:
            return
        events = [e for c in self._waiting for e in c.events]
        snapshot = self._waiting[-1].snapshot if self._waiting else self.accepted
        lost = None
        if self._unkept:
            reason = f"outbox not writable ({self._why}) from {_iso(self._since_ms)}: {self._describe_unkept()}"
            lost = Lost(sum(self._unkept.dropped.values()), tuple(sorted(self._unkept.dropped)), reason)
        try:
            self._outbox.append_many(events, state={self._state_key: snapshot}, lost=lost)
        except StoreError:
            return
        log.warning(
            "outbox writable again: %d events written from memory%s",
            len(events),
            f"; gap recorded: {lost.reason}" if lost is not None else "",
        )
        self._waiting, self._count, self._unkept, self._since_ms = [], 0, _Unkept(), None
        self.on_fault()

    # ------------------------------------------------------------ internals

    def _start_fault(self, exc: StoreError, now_ms: int) -> None:
        self._since_ms, self._why = now_ms, str(exc)
        log.error("%s; events wait in memory (at most %d) and are retried", exc, self._limit)
        self.on_fault()

    def _enqueue(
        self, events: list[PendingEvent], snapshot: dict[str, Any], targets: Collection[str], now_ms: int
    ) -> bool:
        self._drop_waiting(self._count + len(events) - self._limit)
        if self._count + len(events) > self._limit:
            events = self._drop(events, self._count + len(events) - self._limit)
        if self._count + len(events) > self._limit:
            self._refuse(events, targets, now_ms)
            return False
        self._waiting.append(_Commit(events, snapshot))
        self._count += len(events)
        self.accepted = snapshot
        return True

    def _drop_waiting(self, excess: int) -> None:
        """Drop up to `excess` of the oldest droppable events waiting."""
        for waiting in self._waiting:
            if excess <= 0:
                return
            before = len(waiting.events)
            waiting.events = self._drop(waiting.events, excess)
            excess -= before - len(waiting.events)
            self._count -= before - len(waiting.events)

    def _drop(self, events: list[PendingEvent], excess: int) -> list[PendingEvent]:
        kept: list[PendingEvent] = []
        for event in events:
            if excess > 0 and event[0] in DROPPABLE_TYPES:
                self._note_dropped(event[0])
                excess -= 1
            else:
                kept.append(event)
        return kept

    def _refuse(self, events: Sequence[PendingEvent], targets: Collection[str], now_ms: int) -> None:
        """The commit is not kept: its droppable events count as dropped, its results as not recorded."""
        first = not self._unkept
        for kind, _body, _ts in events:
            if kind in DROPPABLE_TYPES:
                self._note_dropped(kind)
        self._unkept.refused(targets, now_ms)
        self.unkept_total += 1 if targets else 0
        if first and self._unkept:
            log.error("memory buffer full: results are no longer recorded until the outbox is writable")
            self.on_fault()

    def _note_dropped(self, kind: str) -> None:
        self._unkept.dropped[kind] += 1
        self.unkept_total += 1

    def _describe_unkept(self) -> str:
        parts = []
        if self._unkept.dropped:
            parts.append("dropped " + ", ".join(f"{n} {t}" for t, n in sorted(self._unkept.dropped.items())))
        u = self._unkept
        if u.rounds and u.first_ms is not None and u.last_ms is not None:
            names = sorted(u.targets)
            shown = ", ".join(names[:_NAMED_TARGETS]) + (f" and {len(names) - _NAMED_TARGETS} more"
                                                           if len(names) > _NAMED_TARGETS else "")
            parts.append(
                f"results of {shown} not recorded in {u.rounds} rounds from {_iso(u.first_ms)} to {_iso(u.last_ms)}"
            )
        return "; ".join(parts)
