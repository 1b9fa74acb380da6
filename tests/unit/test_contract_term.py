"""Renewal arithmetic of a contract's term: tables for the cases read off a contract, properties for the rest."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from linewarden.config.contract import ContractConfig
from linewarden.config.lifecycle import EscrowItem, Span, Term, Termination, add_months
from linewarden.contract_term import (
    convenience_end,
    due_within,
    escrow_check,
    next_decision,
    notice_deadline,
    period,
    period_on,
)

D = date
DAY = timedelta(days=1)


def term(start: date, end: date, notice: str = "90 days", renew: str | None = None) -> Term:
    extra = {"auto_renew": True, "renewal_term": renew} if renew else {}
    return Term.model_validate({"start": start, "end": end, "renewal_notice": notice, **extra})


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (D(2026, 1, 31), 1, D(2026, 2, 28)),
        (D(2028, 1, 31), 1, D(2028, 2, 29)),
        (D(2026, 3, 31), -1, D(2026, 2, 28)),
        (D(2026, 8, 31), 1, D(2026, 9, 30)),
        (D(2026, 12, 15), 1, D(2027, 1, 15)),
        (D(2026, 1, 15), -1, D(2025, 12, 15)),
        (D(2028, 2, 29), 12, D(2029, 2, 28)),
    ],
)
def test_add_months_keeps_the_day_or_takes_the_month_end(day, months, expected):
    assert add_months(day, months) == expected


@pytest.mark.parametrize(
    ("text", "count", "unit"),
    [("90 days", 90, "days"), ("6 weeks", 42, "days"), ("3 months", 3, "months"), ("1 year", 12, "months"),
     ("2y", 24, "months"), ("30d", 30, "days"), ("1 month", 1, "months")],
)
def test_spans_are_days_or_months(text, count, unit):
    span = Term.model_validate({"start": D(2026, 1, 1), "end": D(2030, 1, 1), "renewal_notice": text}).renewal_notice
    assert (span.count, span.unit) == (count, unit)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"end": D(2025, 12, 31)}, "is before start"),
        ({"auto_renew": True}, "auto_renew needs renewal_term"),
        ({"renewal_term": "12 months"}, "renewal_term is only for auto_renew"),
        ({"renewal_notice": "25 months"}, "longer than the initial term"),
        ({"auto_renew": True, "renewal_term": "1 month"}, "longer than a renewal term"),
        ({"renewal_notice": "90"}, "write a span like"),
        ({"renewal_notice": "3 fortnights"}, "write a span like"),
        ({"end": D(9999, 12, 31)}, "less than or equal to 9000-12-31"),
    ],
)
def test_bad_terms_are_refused_with_the_reason(fields, message):
    with pytest.raises(ValidationError, match=message):
        Term.model_validate({"start": D(2026, 1, 1), "end": D(2027, 12, 31), **fields})


def test_escrow_verified_needs_a_deposit_before_it():
    with pytest.raises(ValidationError, match="verified without deposited"):
        EscrowItem(item="src", verified=D(2026, 1, 1))
    with pytest.raises(ValidationError, match="before deposited"):
        EscrowItem(item="src", deposited=D(2026, 2, 1), verified=D(2026, 1, 1))


def test_a_fixed_term_contract_expires_with_its_notice_deadline():
    t = term(D(2026, 1, 1), D(2027, 12, 31), "3 months")
    d = next_decision(t, D(2027, 9, 1))
    assert d is not None
    assert (d.kind, d.deadline, d.period.end, d.renews, d.due) == ("expiry", D(2027, 10, 1), D(2027, 12, 31), False,
                                                                  D(2027, 10, 1))
    late = next_decision(t, D(2027, 11, 1))
    assert late is not None and late.due == D(2027, 12, 31), "deadline passed: the end itself is what is due"
    assert next_decision(t, D(2028, 1, 1)) is None, "ended"
    assert period_on(t, D(2025, 12, 31)) is None


def test_an_auto_renewing_contract_rolls_to_the_next_term_once_its_deadline_passed():
    t = term(D(2026, 1, 1), D(2026, 12, 31), "90 days", renew="12 months")
    d = next_decision(t, D(2026, 9, 1))
    assert d is not None and d.missed is None
    assert (d.deadline, d.period.number, d.kind) == (D(2026, 10, 3), 0, "renewal")
    after = next_decision(t, D(2026, 10, 4))
    assert after is not None and after.missed is not None and after.missed.number == 0
    assert (after.period.start, after.period.end, after.deadline) == (D(2027, 1, 1), D(2027, 12, 31), D(2027, 10, 3))
    assert due_within(t, D(2026, 9, 1), 30) is None
    assert due_within(t, D(2026, 9, 3), 30) == next_decision(t, D(2026, 9, 3))


def test_monthly_renewals_from_the_31st_stay_on_month_ends():
    t = term(D(2026, 1, 1), D(2026, 1, 30), "7 days", renew="1 month")
    starts = [period(t, k).start for k in range(1, 6)]
    assert starts == [D(2026, 1, 31), D(2026, 2, 28), D(2026, 3, 31), D(2026, 4, 30), D(2026, 5, 31)]


def test_convenience_and_escrow():
    assert convenience_end(Termination(for_convenience="6 months"), D(2026, 8, 31)) == D(2027, 2, 28)
    assert convenience_end(Termination(), D(2026, 8, 31)) is None
    today = D(2026, 12, 1)
    assert escrow_check(EscrowItem(item="a"), today).status == "missing"
    item = EscrowItem(item="b", deposited=D(2026, 1, 31), refresh="6 months")
    check = escrow_check(item, today)
    assert (check.status, check.refresh_due) == ("refresh_overdue", D(2026, 7, 31))
    assert escrow_check(EscrowItem(item="c", deposited=D(2026, 11, 1)), today).status == "unverified"
    assert escrow_check(EscrowItem(item="d", deposited=D(2026, 11, 1), verified=D(2026, 11, 2)), today).status == "ok"


def test_contract_sections_stay_optional():
    base = {"contract": {"id": "c", "vendor": "v", "document_sha256": "0" * 64, "currency": "EUR",
                         "fee_per_period": 1, "timezone": "UTC"},
            "scope": {"assets": ["a"]}, "support": {"tier": "t", "targets": {}}}  # fmt: skip
    c = ContractConfig.model_validate(base)
    assert (c.term, c.escrow, c.termination.duties) == (None, [], [])


# ---------------------------------------------------------------- properties

days = st.dates(min_value=D(1990, 1, 1), max_value=D(2200, 12, 31))
spans = st.one_of(
    st.integers(1, 400).map(lambda n: Span(count=n, unit="days")),
    st.integers(1, 36).map(lambda n: Span(count=n, unit="months")),
)


@st.composite
def renewing_terms(draw: st.DrawFn) -> Term:
    start = draw(days)
    length = draw(st.integers(28, 2000))
    renew = draw(spans)
    first = start + timedelta(days=length)
    shortest = min(length, (renew.after(first) - first).days)
    notice = Span(count=draw(st.integers(1, max(1, shortest - 1))), unit="days")
    return Term(start=start, end=first - DAY, auto_renew=True, renewal_term=renew, renewal_notice=notice)


@given(days, st.integers(-1200, 1200))
def test_add_months_lands_in_the_right_month_on_the_day_or_the_month_end(day, months):
    moved = add_months(day, months)
    assert (moved.year * 12 + moved.month) - (day.year * 12 + day.month) == months
    assert moved.day == min(day.day, calendar.monthrange(moved.year, moved.month)[1])


@given(renewing_terms(), st.integers(0, 60))
def test_terms_follow_each_other_without_gap_or_overlap(t, k):
    this, following = period(t, k), period(t, k + 1)
    assert this.start <= this.end
    assert following.start == this.end + DAY
    if k >= 1 and t.renewal_term is not None and t.renewal_term.unit == "months":
        anchor = t.end + DAY  # every renewal starts on the anchor's day or its month's last day: no drift
        assert following.start.day == min(anchor.day, calendar.monthrange(following.start.year,
                                                                          following.start.month)[1])


@given(renewing_terms(), st.integers(0, 20_000))
def test_every_day_after_the_start_is_in_exactly_the_term_that_holds_it(t, offset):
    day = t.start + timedelta(days=offset)
    found = period_on(t, day)
    assert found is not None and found.start <= day <= found.end
    assert found == period(t, found.number)


@given(renewing_terms(), st.integers(0, 20_000), spans)
def test_the_notice_deadline_is_the_last_day_notice_is_in_time(t, offset, notice):
    t = t.model_copy(update={"renewal_notice": notice})
    found = period_on(t, t.start + timedelta(days=offset))
    assert found is not None
    deadline = notice_deadline(t, found)
    limit = found.end + DAY
    assert notice.after(deadline) <= limit < notice.after(deadline + DAY)


@given(renewing_terms(), st.integers(0, 20_000), st.integers(0, 400))
def test_the_next_decision_is_never_in_the_past_for_an_auto_renewing_contract(t, offset, window):
    today = t.start + timedelta(days=offset)
    d = next_decision(t, today)
    assert d is not None and d.deadline >= today and d.due == d.deadline
    assert d.period.end >= today
    if d.missed is not None:
        assert notice_deadline(t, d.missed) < today <= d.missed.end and d.period.number == d.missed.number + 1
    assert (due_within(t, today, window) is not None) == (d.deadline <= today + timedelta(days=window))
