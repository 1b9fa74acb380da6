"""A service's state from its components' states, by the service rule.

With k the number of components that must work (all: n, any: 1, k_of_n: k), and counting components
that are UP, DEGRADED and UNKNOWN at each instant:

- UP        when at least k components are UP;
- DEGRADED  when fewer than k are UP but at least k are UP or DEGRADED (the rule holds only thanks to
            components that answer with a failing health condition);
- UNKNOWN   when UP + DEGRADED < k but the UNKNOWN components could still make up k (the service's
            state cannot be decided; it is treated as a monitoring gap);
- DOWN      when even counting every UNKNOWN component fewer than k could work: the rule fails.
"""

from __future__ import annotations

from itertools import pairwise

from linewarden.config.contract import ServiceDef
from linewarden.domain import State
from linewarden.sla.states import Piece, StateMap, from_pieces, pieces


def required(service: ServiceDef) -> int:
    if service.rule == "all":
        return len(service.components)
    if service.rule == "any":
        return 1
    assert service.k is not None  # ServiceDef validation guarantees it
    return service.k


def service_state(states: list[State], k: int) -> State:
    up = states.count(State.UP)
    working = up + states.count(State.DEGRADED)
    if up >= k:
        return State.UP
    if working >= k:
        return State.DEGRADED
    if working + states.count(State.UNKNOWN) >= k:
        return State.UNKNOWN
    return State.DOWN


def combine(components: list[StateMap], k: int, start_ms: int, end_ms: int) -> StateMap:
    """Service states over [start, end) from component partitions of that same window."""
    seqs = [pieces(m) for m in components]
    cuts = sorted({start_ms, end_ms} | {t for seq in seqs for s, e, _ in seq for t in (s, e)})
    at = [0] * len(seqs)
    out: list[Piece] = []
    for a, b in pairwise(cuts):
        now: list[State] = []
        for i, seq in enumerate(seqs):
            while seq[at[i]][1] <= a:
                at[i] += 1
            now.append(seq[at[i]][2])
        out.append((a, b, service_state(now, k)))
    return from_pieces(out)
