"""Severity of a target's state: criticality × state × production calendar (docs/figures.md)."""

from __future__ import annotations

from linewarden.config.agent import SeverityMatrix
from linewarden.domain import Criticality, Severity, State


def severity_for(
    matrix: SeverityMatrix, criticality: Criticality, state: State, in_production: bool
) -> Severity | None:
    """The matrix cell for DOWN or DEGRADED; None for UP and UNKNOWN, which open no incident."""
    row = matrix.row(criticality)
    if state is State.DOWN:
        return row.down_in_production if in_production else row.down_off_production
    if state is State.DEGRADED:
        return row.degraded_in_production if in_production else row.degraded_off_production
    return None


def worst(severities: list[Severity | None]) -> Severity | None:
    """The most severe of `severities` (S1 beats S4); None when there is none."""
    present = [s for s in severities if s is not None]
    return min(present, key=lambda s: s.rank) if present else None
