"""Debouncing probe results into confirmed state changes (DESIGN §4).

Rules:

- The state starts UNKNOWN. A result equal to the current state ends any pending run.
- A run is the consecutive results that differ from the current state and fall in one class: UP, "bad"
  (DOWN or DEGRADED) or UNKNOWN (the probe could not tell). A result of another class starts a new run.
- A run confirms after `recover_threshold` results for UP and `fail_threshold` for bad and UNKNOWN runs,
  from any state, start-up (UNKNOWN) included. A bad run confirms the worst state in it, so alternating
  DOWN/DEGRADED results still leave UP; a switch between DOWN and DEGRADED needs a full run of the other one.
- The transition is dated at the first result of the run and carries the reason of the first result that
  had the confirmed state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from linewarden.domain import State
from linewarden.errors import LinewardenError

_BAD = frozenset({State.DOWN, State.DEGRADED})


@dataclass(frozen=True)
class Transition:
    from_: State
    to: State
    at_ms: int
    reason: str


@dataclass(frozen=True)
class Pending:
    """A run not yet confirmed: the state it would confirm, how many results it has, when it began."""

    state: State
    count: int
    since_ms: int
    reason: str


def _same_class(a: State, b: State) -> bool:
    return a == b or (a in _BAD and b in _BAD)


class Debouncer:
    def __init__(self, fail_threshold: int, recover_threshold: int) -> None:
        if fail_threshold < 1 or recover_threshold < 1:
            raise ValueError("thresholds must be at least 1")
        self.fail_threshold = fail_threshold
        self.recover_threshold = recover_threshold
        self.state = State.UNKNOWN
        self.pending: Pending | None = None

    def observe(self, state: State, at_ms: int, reason: str) -> Transition | None:
        if state == self.state:
            self.pending = None
            return None
        run = self.pending
        if run is not None and _same_class(run.state, state):
            if state == State.DOWN and run.state == State.DEGRADED:
                run = Pending(State.DOWN, run.count + 1, run.since_ms, reason)
            else:
                run = Pending(run.state, run.count + 1, run.since_ms, run.reason)
        else:
            run = Pending(state, 1, at_ms, reason)
        threshold = self.recover_threshold if run.state == State.UP else self.fail_threshold
        if run.count < threshold:
            self.pending = run
            return None
        transition = Transition(self.state, run.state, run.since_ms, run.reason)
        self.state = run.state
        self.pending = None
        return transition

    @property
    def failing(self) -> bool:
        """True while a run towards DOWN is pending (used to hold incidents for a site-link check)."""
        return self.pending is not None and self.pending.state == State.DOWN

    def snapshot(self) -> dict[str, Any]:
        pending = self.pending
        return {
            "state": self.state.value,
            "pending": None
            if pending is None
            else {
                "state": pending.state.value,
                "count": pending.count,
                "since_ms": pending.since_ms,
                "reason": pending.reason,
            },
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Load a `snapshot()`. Raises LinewardenError (and changes nothing) when it is malformed."""
        try:
            state = State(data["state"])
            raw = data["pending"]
            pending = (
                None
                if raw is None
                else Pending(State(raw["state"]), int(raw["count"]), int(raw["since_ms"]), str(raw["reason"]))
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LinewardenError(f"bad debouncer snapshot: {exc!r}") from None
        if pending is not None and (pending.count < 1 or pending.state == state):
            raise LinewardenError("bad debouncer snapshot: pending run is empty or equals the state")
        self.state = state
        self.pending = pending
