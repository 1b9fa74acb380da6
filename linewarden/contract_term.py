"""A contract's term over time (docs/contract-lifecycle.md): which term a day falls in, when notice of
non-renewal is due, what procurement must decide next, and the escrow checklist. Pure: the day is an
argument, dates are whole days in the contract's time zone.

Terms are numbered 0 (the initial term, `start` through `end`) and 1, 2, … (renewals). Renewal k runs from
the k-1th multiple of `renewal_term` after the first renewal day to the day before the kth, all counted from
that one anchor, so monthly renewals from the 31st stay on month ends instead of drifting to the 28th.
Notice given on or before a term's notice deadline (its end + 1 day, less `renewal_notice`) is in time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from linewarden.config.lifecycle import EscrowItem, Term, Termination

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class TermPeriod:
    number: int
    start: date
    end: date
    """The term's last day."""


def initial(term: Term) -> TermPeriod:
    return TermPeriod(0, term.start, term.end)


def period(term: Term, number: int) -> TermPeriod:
    """Term `number` (0: initial). Raises ValueError for a renewal of a contract that does not renew."""
    if number == 0:
        return initial(term)
    if term.renewal_term is None or number < 0:
        raise ValueError(f"contract has no term {number}")
    anchor = term.end + ONE_DAY
    return TermPeriod(number, term.renewal_term.after(anchor, number - 1),
                      term.renewal_term.after(anchor, number) - ONE_DAY)


def period_on(term: Term, day: date) -> TermPeriod | None:
    """The term `day` falls in; None before the start, or after the end of a contract that does not renew."""
    if day < term.start:
        return None
    if day <= term.end:
        return initial(term)
    span = term.renewal_term
    if span is None:
        return None
    anchor = term.end + ONE_DAY
    if span.unit == "days":
        guess = (day - anchor).days // span.count + 1
    else:
        guess = ((day.year - anchor.year) * 12 + day.month - anchor.month) // span.count + 1
    found = period(term, max(guess, 1))
    while found.start > day:
        found = period(term, found.number - 1)
    while found.end < day:
        found = period(term, found.number + 1)
    return found


def notice_deadline(term: Term, of: TermPeriod) -> date:
    """The last day notice of non-renewal can be given for the term `of` to end as scheduled: the latest day
    that, moved on by `renewal_notice`, is no later than the day after the term's last day."""
    limit = of.end + ONE_DAY
    day = term.renewal_notice.before(limit)
    while term.renewal_notice.after(day + ONE_DAY) <= limit:  # from a shorter month: a day or three later
        day += ONE_DAY
    return day


@dataclass(frozen=True)
class Decision:
    """What procurement decides next about a contract, as seen on `today`."""

    period: TermPeriod
    """The term the decision is about: it renews (auto_renew) or ends after its last day."""
    deadline: date
    """The last day to give notice (not to renew, or to renegotiate)."""
    renews: bool
    missed: TermPeriod | None
    """A term whose notice deadline passed: it renews without a say (auto_renew), the decision is the next one's."""
    kind: Literal["renewal", "expiry"]
    today: date

    @property
    def due(self) -> date:
        """The date the decision falls due: the notice deadline, or the end itself once that is passed."""
        return self.deadline if self.deadline >= self.today else self.period.end


def next_decision(term: Term, today: date) -> Decision | None:
    """The next renewal or expiry decision; None once a contract that does not renew has ended."""
    current = period_on(term, today) or (initial(term) if today < term.start else None)
    if current is None:
        return None
    deadline = notice_deadline(term, current)
    missed = None
    if deadline < today and term.auto_renew:
        missed, current = current, period(term, current.number + 1)
        deadline = notice_deadline(term, current)
    return Decision(current, deadline, term.auto_renew, missed, "renewal" if term.auto_renew else "expiry", today)


def due_within(term: Term, today: date, days: int) -> Decision | None:
    """The next decision if it falls due within `days` days of `today` (today counts), else None."""
    found = next_decision(term, today)
    return found if found is not None and found.due <= today + timedelta(days=days) else None


def convenience_end(termination: Termination, today: date) -> date | None:
    """The earliest end of the contract if the plant gave notice for convenience today (None: no such right)."""
    return None if termination.for_convenience is None else termination.for_convenience.after(today)


EscrowStatus = Literal["missing", "refresh_overdue", "unverified", "ok"]


@dataclass(frozen=True)
class EscrowCheck:
    item: EscrowItem
    status: EscrowStatus
    refresh_due: date | None
    """When the deposit must next be refreshed (None: no refresh rule, or nothing deposited)."""


def escrow_check(item: EscrowItem, today: date) -> EscrowCheck:
    if item.deposited is None:
        return EscrowCheck(item, "missing", None)
    due = None if item.refresh is None else item.refresh.after(item.deposited)
    if due is not None and due < today:
        return EscrowCheck(item, "refresh_overdue", due)
    return EscrowCheck(item, "unverified" if item.verified is None else "ok", due)
