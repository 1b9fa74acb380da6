"""What procurement sees of a contract's own life: renewals due soon with the vendor's scorecard over the
term so far, and each contract's term, termination rights and escrow checklist. Shared by the CLI, the API
and the console; the date rules are in `linewarden.contract_term`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from collector.reporting import reports
from collector.store.base import Store
from linewarden.book import ContractBook
from linewarden.config.contract import ContractConfig
from linewarden.contract_term import (
    ONE_DAY,
    Decision,
    convenience_end,
    due_within,
    escrow_check,
    next_decision,
    period_on,
)
from linewarden.sla.report import ContractReport

# Months of the term shown in a trend: a five-year term's first years say little about the vendor now.
TREND_MONTHS = 24


@dataclass(frozen=True)
class TrendMonth:
    period: str
    score: Decimal
    uptime_lines_met: int
    uptime_lines: int
    incidents: int
    credits_owed: Decimal
    partial: bool

    def as_dict(self) -> dict[str, Any]:
        return {"period": self.period, "score": str(self.score), "uptime_lines_met": self.uptime_lines_met,
                "uptime_lines": self.uptime_lines, "incidents": self.incidents,
                "credits_owed": str(self.credits_owed), "partial": self.partial}


@dataclass(frozen=True)
class Renewal:
    contract: ContractConfig
    decision: Decision
    trend: tuple[TrendMonth, ...]

    @property
    def action(self) -> str:
        d = self.decision
        if d.kind == "renewal":
            missed = "" if d.missed is None else (f"renews on {d.missed.end + ONE_DAY} (too late for notice); "
                                                  "then ")
            return (f"{missed}renews on {d.period.end + ONE_DAY} for {self.term_renewal()} unless notice is given "
                    f"by {d.deadline}")
        if d.deadline >= d.today:
            return f"expires on {d.period.end}: decide (renew or re-tender) and give notice by {d.deadline}"
        return f"expires on {d.period.end}; the notice deadline {d.deadline} has passed"

    def term_renewal(self) -> str:
        term = self.contract.term
        return str(term.renewal_term) if term is not None and term.renewal_term is not None else ""

    def as_dict(self) -> dict[str, Any]:
        d, c = self.decision, self.contract.contract
        scores = [m.score for m in self.trend if not m.partial]
        return {
            "contract": c.id, "vendor": c.vendor, "name": c.name, "kind": d.kind, "term_number": d.period.number,
            "term_start": d.period.start.isoformat(), "term_end": d.period.end.isoformat(),
            "notice_deadline": d.deadline.isoformat(), "due": d.due.isoformat(),
            "days_left": (d.due - d.today).days, "auto_renew": d.renews,
            "renewal_term": self.term_renewal() or None, "action": self.action,
            "trend": [m.as_dict() for m in self.trend],
            "score_first": str(scores[0]) if scores else None, "score_last": str(scores[-1]) if scores else None,
            "score_mean": str(round(sum(scores) / len(scores), 1)) if scores else None,
        }


def today_in(contract: ContractConfig, now_ms: int) -> date:
    return datetime.fromtimestamp(now_ms / 1000, ZoneInfo(contract.contract.timezone)).date()


def _months(first: date, last: date) -> list[str]:
    out, (year, month) = [], (first.year, first.month)
    while (year, month) <= (last.year, last.month):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out[-TREND_MONTHS:]


MonthReport = Callable[[ContractConfig, str], ContractReport]


def trend(store: Store, book: ContractBook, contract: ContractConfig, now_ms: int,
          month_report: MonthReport | None = None) -> tuple[TrendMonth, ...]:
    """The scorecard of each month of the current term so far (the month under way partial), at most
    TREND_MONTHS of them; none before the term starts. `month_report(contract, 'YYYY-MM')` gives a month's
    report as of now (default: computed; the console passes its cache)."""
    term = contract.term
    today = today_in(contract, now_ms)
    current = None if term is None else period_on(term, today)
    if current is None:
        return ()
    out = []
    for label in _months(current.start, today):
        r = month_report(contract, label) if month_report is not None else \
            reports(store, book, label, contract.contract.id, now_ms=now_ms)[0]  # fmt: skip
        out.append(TrendMonth(label, r.scorecard.score, r.scorecard.uptime_lines_met, r.scorecard.uptime_lines,
                              r.scorecard.incidents, r.credits.total, r.partial))
    return tuple(out)


def renewals_due(store: Store, book: ContractBook, now_ms: int, days: int,
                 month_report: MonthReport | None = None) -> list[Renewal]:
    """Contracts whose next renewal or expiry decision falls due within `days` days, soonest first."""
    out = []
    for c in (book.contracts[k] for k in sorted(book.contracts)):
        if c.term is None:
            continue
        found = due_within(c.term, today_in(c, now_ms), days)
        if found is not None:
            out.append(Renewal(c, found, trend(store, book, c, now_ms, month_report)))
    return sorted(out, key=lambda r: (r.decision.due, r.contract.contract.id))


def life(contract: ContractConfig, now_ms: int) -> dict[str, Any]:
    """A contract's term, next decision, termination rights and escrow checklist, as of now."""
    today = today_in(contract, now_ms)
    term, ending = contract.term, contract.termination
    current = None if term is None else period_on(term, today)
    decision = None if term is None else next_decision(term, today)
    earliest = convenience_end(ending, today)

    def span(value: object) -> str | None:
        return None if value is None else str(value)

    return {
        "contract": contract.contract.id, "vendor": contract.contract.vendor, "today": today.isoformat(),
        "term": None if term is None else {
            "start": term.start.isoformat(), "end": term.end.isoformat(), "auto_renew": term.auto_renew,
            "renewal_term": span(term.renewal_term), "renewal_notice": str(term.renewal_notice),
            "current": None if current is None else {"number": current.number, "start": current.start.isoformat(),
                                                     "end": current.end.isoformat()},
            "next_decision": None if decision is None else {
                "kind": decision.kind, "deadline": decision.deadline.isoformat(), "due": decision.due.isoformat(),
                "term_end": decision.period.end.isoformat()},
        },
        "termination": {
            "for_convenience": span(ending.for_convenience),
            "earliest_convenience_end": None if earliest is None else earliest.isoformat(),
            "vendor_notice": span(ending.vendor_notice), "cure_period": span(ending.cure_period),
            "transition_period": span(ending.transition_period), "data_extraction": span(ending.data_extraction),
            "duties": list(ending.duties),
        },
        "escrow": [
            {"item": x.item.item, "agent": x.item.agent, "status": x.status,
             "deposited": None if x.item.deposited is None else x.item.deposited.isoformat(),
             "verified": None if x.item.verified is None else x.item.verified.isoformat(),
             "refresh": span(x.item.refresh),
             "refresh_due": None if x.refresh_due is None else x.refresh_due.isoformat(),
             "release": x.item.release}
            for x in (escrow_check(i, today) for i in contract.escrow)
        ],
    }
