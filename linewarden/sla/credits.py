"""Service credits for one period, in the contract's currency.

- Each uptime line that misses its target (met is False; a line without a decided figure, met None,
  earns nothing) earns `fee_pct` of the period's fee from the band with the
  lowest `below_pct` that its exact uptime is strictly below (a miss above every band earns nothing).
  Contract loading guarantees the bands are listed from the highest below_pct down and that a lower band
  never has a smaller fee_pct, so that band is also the highest fee the uptime qualifies for.
- Each decided response or resolution breach adds its severity's `*_fee_pct` of the fee plus its
  `*_amount` (breaches still undecided at `as_of` add nothing).
- The sum is capped at `cap_fee_pct` of the fee, then rounded to the cent, once, ROUND_HALF_UP.
  Line amounts are exact (unrounded) Decimals.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Literal

from linewarden.config.contract import Credits
from linewarden.domain import Severity

CENT = Decimal("0.01")
CreditKind = Literal["uptime", "response", "resolution"]


@dataclass(frozen=True)
class CreditLine:
    kind: CreditKind
    ref: str  # the uptime line's scope, or the incident id
    detail: str  # "below 99.9" or the severity
    fee_pct: Decimal
    amount: Decimal


@dataclass(frozen=True)
class CreditSummary:
    lines: tuple[CreditLine, ...]
    subtotal: Decimal
    cap: Decimal
    capped: bool
    total: Decimal


@dataclass(frozen=True)
class UptimeOutcome:
    scope: str
    uptime: Fraction | None
    met: bool | None


@dataclass(frozen=True)
class Breach:
    incident_id: str
    severity: Severity
    kind: Literal["response", "resolution"]


def pct_of(fee: Decimal, pct: Decimal) -> Decimal:
    return fee * pct.scaleb(-2)


def uptime_credit(outcome: UptimeOutcome, credits: Credits, fee: Decimal) -> CreditLine | None:
    uptime = outcome.uptime
    if outcome.met is not False or uptime is None:
        return None
    bands = [b for b in credits.uptime if uptime < Fraction(b.below_pct)]
    if not bands:
        return None
    band = min(bands, key=lambda b: b.below_pct)
    return CreditLine("uptime", outcome.scope, f"below {band.below_pct}", band.fee_pct, pct_of(fee, band.fee_pct))


def breach_credit(breach: Breach, credits: Credits, fee: Decimal) -> CreditLine | None:
    rule = credits.breach.for_severity(breach.severity)
    if rule is None:
        return None
    pct = rule.response_fee_pct if breach.kind == "response" else rule.resolution_fee_pct
    extra = rule.response_amount if breach.kind == "response" else rule.resolution_amount
    if pct == 0 and extra == 0:
        return None
    return CreditLine(breach.kind, breach.incident_id, breach.severity.value, pct, pct_of(fee, pct) + extra)


def credit_summary(
    outcomes: list[UptimeOutcome], breaches: list[Breach], credits: Credits, fee: Decimal
) -> CreditSummary:
    found = [uptime_credit(o, credits, fee) for o in outcomes] + [breach_credit(b, credits, fee) for b in breaches]
    lines = tuple(line for line in found if line is not None)
    subtotal = sum((line.amount for line in lines), Decimal(0))
    cap = pct_of(fee, credits.cap_fee_pct)
    capped = subtotal > cap
    total = (cap if capped else subtotal).quantize(CENT, rounding=ROUND_HALF_UP)
    return CreditSummary(lines, subtotal, cap, capped, total)
