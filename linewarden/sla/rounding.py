"""How exact figures become report figures.

- Uptime percentages: 4 decimal places, rounded DOWN (truncated), so a reported uptime never looks
  better than the truth, and for targets with at most 4 decimals "uptime_pct ≥ target" in the report
  agrees with the exact comparison that decides `met` and credits.
- Observed shares: 2 decimal places, rounded DOWN, so a share just short of a contract's minimum never
  shows as reaching it (the minimum itself is compared exactly).
- Every other percentage and the score: 2 places, ROUND_HALF_UP.
- Mean durations (MTTA, MTTR): whole ms, half up.
- Money: see credits.py (to the cent, once, ROUND_HALF_UP).
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction


def floor_places(value: Fraction, places: int) -> Decimal:
    return Decimal(math.floor(value * 10**places)).scaleb(-places)


def half_up_places(value: Fraction, places: int) -> Decimal:
    return Decimal(math.floor(value * 10**places + Fraction(1, 2))).scaleb(-places)


def uptime_pct(value: Fraction) -> Decimal:
    return floor_places(value, 4)


def observed_pct(value: Fraction) -> Decimal:
    return floor_places(value, 2)


def pct(value: Fraction) -> Decimal:
    return half_up_places(value, 2)


def mean_ms(values: list[int]) -> int | None:
    if not values:
        return None
    return math.floor(Fraction(sum(values), len(values)) + Fraction(1, 2))
