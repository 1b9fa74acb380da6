"""An asset's states over a window, as a partition: every instant of [start, end) in exactly one state.

Overlapping segments resolve to the worst observation (DOWN, then DEGRADED, then UP); monitoring gaps
override every observation; time nobody observed is UNKNOWN.
"""

from __future__ import annotations

from linewarden.domain import State
from linewarden.intervals import Interval, clip, normalize, subtract, union
from linewarden.sla.models import AssetTimeline, MonitoringGap

StateMap = dict[State, list[Interval]]
Piece = tuple[int, int, State]
_OBSERVED = (State.DOWN, State.DEGRADED, State.UP)


def gap_intervals(asset: str, gaps: tuple[MonitoringGap, ...]) -> list[Interval]:
    return normalize((g.start_ms, g.end_ms) for g in gaps if not g.assets or asset in g.assets)


def asset_states(timeline: AssetTimeline | None, gaps: list[Interval], start_ms: int, end_ms: int) -> StateMap:
    taken = clip(gaps, start_ms, end_ms)
    out: StateMap = {}
    segments = timeline.segments if timeline is not None else ()
    for state in _OBSERVED:
        mine = subtract(clip(((s.start_ms, s.end_ms) for s in segments if s.state == state), start_ms, end_ms), taken)
        out[state] = mine
        taken = union(taken, mine)
    out[State.UNKNOWN] = subtract([(start_ms, end_ms)], union(*(out[s] for s in _OBSERVED)))
    return out


def pieces(states: StateMap) -> list[Piece]:
    """The partition as time-ordered (start, end, state) pieces."""
    return sorted((s, e, state) for state, ivs in states.items() for s, e in ivs)


def from_pieces(parts: list[Piece]) -> StateMap:
    return {state: normalize((s, e) for s, e, st in parts if st == state) for state in State}
