"""Debouncing probe results into confirmed state changes (docs/figures.md).

Rules:

- The state starts UNKNOWN. A result equal to the current state ends any pending run.
- A run is the consecutive results that differ from the current state and fall in one class: UP, "bad"
  (DOWN or DEGRADED) or UNKNOWN (the probe could not tell). A result of another class starts a new run.
- A run confirms after `recover_threshold` results for UP and `fail_threshold` for bad and UNKNOWN runs,
  from any state, start-up (UNKNOWN) included. A bad run confirms the worst state in it, so alternating
  DOWN/DEGRADED results still leave UP; a switch between DOWN and DEGRADED needs a full run of the other one.
- The transition is dated at the first result of the run and carries the reason and cause code of the first
  result that had the confirmed state.
- Configuration mistakes are not outages. A result marked as a possible configuration mistake (a namespace
  or node the server does not have, an illegal register address) from a target never seen working counts
  as UNKNOWN with the reason "configuration: ..." and its `config.*` cause. "Seen working" is any UP or
  DEGRADED result without such a mark; from then on the same fault counts as the state the probe gave
  (the device's program may have changed). UNKNOWN by configuration is a state of its own here: a run of
  it confirms (after `fail_threshold`) even from a plain UNKNOWN, as a transition UNKNOWN -> UNKNOWN.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from linewarden.domain import State
from linewarden.errors import LinewardenError

_BAD = frozenset({State.DOWN, State.DEGRADED})


_WORKING = frozenset({State.UP, State.DEGRADED})
CONFIG_PREFIX = "config."


@dataclass(frozen=True)
class Transition:
    from_: State
    to: State
    at_ms: int
    reason: str
    cause: str = ""

    @property
    def configuration(self) -> bool:
        """Into UNKNOWN because of how the target is configured."""
        return is_configuration(self.to, self.cause)


@dataclass(frozen=True)
class Pending:
    """A run not yet confirmed: the state it would confirm, how many results it has, when it began."""

    state: State
    count: int
    since_ms: int
    reason: str
    cause: str = ""


def is_configuration(state: State, cause: str) -> bool:
    return state == State.UNKNOWN and cause.startswith(CONFIG_PREFIX)


def judge(state: State, reason: str, cause: str, configuration: str, worked: bool) -> tuple[State, str, str]:
    """(state, reason, cause) of one result by the configuration rule; `configuration` is the result's
    `config.*` code when its fault may be the config's ("" otherwise), `worked` whether the target was
    ever seen working."""
    if configuration and not worked:
        return State.UNKNOWN, f"configuration: {reason}", configuration
    return state, reason, cause


def _distinct(a: State, a_cause: str, b: State, b_cause: str) -> bool:
    return a != b or is_configuration(a, a_cause) != is_configuration(b, b_cause)


def _same_class(a: State, a_cause: str, b: State, b_cause: str) -> bool:
    if is_configuration(a, a_cause) != is_configuration(b, b_cause):
        return False
    return a == b or (a in _BAD and b in _BAD)


class Debouncer:
    def __init__(self, fail_threshold: int, recover_threshold: int) -> None:
        if fail_threshold < 1 or recover_threshold < 1:
            raise ValueError("thresholds must be at least 1")
        self.fail_threshold = fail_threshold
        self.recover_threshold = recover_threshold
        self.state = State.UNKNOWN
        self.cause = ""  # of the confirmed state
        self.worked = False
        self.pending: Pending | None = None

    def observe(
        self, state: State, at_ms: int, reason: str, cause: str = "", configuration: str = ""
    ) -> Transition | None:
        """One probe result; `configuration` as in `judge`."""
        state, reason, cause = judge(state, reason, cause, configuration, self.worked)
        if state in _WORKING and not configuration:
            self.worked = True
        if not _distinct(state, cause, self.state, self.cause):
            self.pending = None
            return None
        run = self.pending
        if run is not None and _same_class(run.state, run.cause, state, cause):
            if state == State.DOWN and run.state == State.DEGRADED:
                run = Pending(State.DOWN, run.count + 1, run.since_ms, reason, cause)
            else:
                run = Pending(run.state, run.count + 1, run.since_ms, run.reason, run.cause)
        else:
            run = Pending(state, 1, at_ms, reason, cause)
        threshold = self.recover_threshold if run.state == State.UP else self.fail_threshold
        if run.count < threshold:
            self.pending = run
            return None
        transition = Transition(self.state, run.state, run.since_ms, run.reason, run.cause)
        self.state, self.cause = run.state, run.cause
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
            "cause": self.cause,
            "worked": self.worked,
            "pending": None
            if pending is None
            else {
                "state": pending.state.value,
                "count": pending.count,
                "since_ms": pending.since_ms,
                "reason": pending.reason,
                "cause": pending.cause,
            },
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Load a `snapshot()`. Raises LinewardenError (and changes nothing) when it is malformed.

        Snapshots from before cause codes load with empty causes, and count a target as seen working when
        its state was UP or DEGRADED."""
        try:
            state = State(data["state"])
            cause = str(data.get("cause", ""))
            worked = bool(data.get("worked", state in _WORKING))
            raw = data["pending"]
            pending = (
                None
                if raw is None
                else Pending(
                    State(raw["state"]),
                    int(raw["count"]),
                    int(raw["since_ms"]),
                    str(raw["reason"]),
                    str(raw.get("cause", "")),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LinewardenError(f"bad debouncer snapshot: {exc!r}") from None
        if pending is not None and (pending.count < 1 or not _distinct(pending.state, pending.cause, state, cause)):
            raise LinewardenError("bad debouncer snapshot: pending run is empty or equals the state")
        self.state, self.cause, self.worked = state, cause, worked
        self.pending = pending
