"""Uptime of one scope line: (covered − excluded − downtime) / (covered − excluded), exactly.

Within the period, all figures are taken inside the line's *covered* time (its coverage calendar):

1. maintenance: covered time inside approved windows announced at least `notice` ahead of their start
   (windows merged first, so overlapping windows never exclude twice). Windows announced later are not
   excluded: what was down inside them is downtime.
2. gaps: the rest of the covered time in which the line's state is UNKNOWN (no data, agent dead,
   explicit monitoring gaps, a service whose state cannot be decided). Policy "exclude" excludes it,
   "up" counts it as up, "down" counts it as downtime. Gap time inside `excused` (a target unmeasurable
   because of the agent's configuration) is excluded whatever the policy: it is never the vendor's.
3. downtime: DOWN time (plus gap time under policy "down") + DEGRADED time × degraded_weight,
   outside the excluded time.

Observed time is the covered time outside approved maintenance in which the line's state was known
(covered − maintenance − gaps); the observed share is observed / (covered − maintenance). A line with no
observed time (everything excluded, nothing covered, or nothing seen) has no uptime at all: `uptime` is
None, whatever the gap policy, so a month without data is never 100 % (nor 0 %).
All sums are additive: measuring two adjacent windows and adding them gives the whole window's figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from linewarden.domain import State
from linewarden.intervals import Interval, intersect, subtract, total
from linewarden.sla.states import StateMap

GapPolicy = Literal["exclude", "up", "down"]


@dataclass(frozen=True)
class Measure:
    covered_ms: int = 0
    maintenance_ms: int = 0
    gap_ms: int = 0
    excluded_ms: int = 0
    down_ms: int = 0
    degraded_ms: int = 0
    downtime_ms: Decimal = Decimal(0)

    def __add__(self, other: Measure) -> Measure:
        return Measure(
            self.covered_ms + other.covered_ms,
            self.maintenance_ms + other.maintenance_ms,
            self.gap_ms + other.gap_ms,
            self.excluded_ms + other.excluded_ms,
            self.down_ms + other.down_ms,
            self.degraded_ms + other.degraded_ms,
            self.downtime_ms + other.downtime_ms,
        )

    @property
    def counted_ms(self) -> int:
        return self.covered_ms - self.excluded_ms

    @property
    def observed_ms(self) -> int:
        return self.covered_ms - self.maintenance_ms - self.gap_ms

    @property
    def observed_share(self) -> Fraction | None:
        """Observed time in percent of the covered time outside maintenance; None when there is none."""
        owed = self.covered_ms - self.maintenance_ms
        return Fraction(self.observed_ms * 100, owed) if owed else None

    @property
    def uptime(self) -> Fraction | None:
        """Exact uptime in percent; None when nothing was observed."""
        if self.observed_ms == 0:
            return None
        return (self.counted_ms - Fraction(self.downtime_ms)) * 100 / self.counted_ms


def measure(
    states: StateMap,
    covered: list[Interval],
    timely_windows: list[Interval],
    policy: GapPolicy,
    weight: Decimal,
    excused: list[Interval] | None = None,
) -> Measure:
    maintenance = intersect(covered, timely_windows)
    counted = subtract(covered, maintenance)
    gaps = intersect(counted, states[State.UNKNOWN])
    excused_gaps = intersect(gaps, excused or [])
    excluded_gaps = gaps if policy == "exclude" else excused_gaps
    net = subtract(counted, excluded_gaps)
    down = total(intersect(net, states[State.DOWN])) + (total(subtract(gaps, excused_gaps)) if policy == "down" else 0)
    degraded = total(intersect(net, states[State.DEGRADED]))
    gap_ms = total(gaps)
    return Measure(
        covered_ms=total(covered),
        maintenance_ms=total(maintenance),
        gap_ms=gap_ms,
        excluded_ms=total(maintenance) + total(excluded_gaps),
        down_ms=down,
        degraded_ms=degraded,
        downtime_ms=down + degraded * weight,
    )
