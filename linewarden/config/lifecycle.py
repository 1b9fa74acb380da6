"""A contract's own life (docs/contract-lifecycle.md): its term and renewal, termination rights and
transition duties, and the items the vendor keeps in escrow. Sections `[term]`, `[termination]`, `[[escrow]]`.

Lengths of contract time are calendar spans ("90 days", "3 months", "1 year"), not durations: a month is a
calendar month, counted from a date with the day kept where the month has it (else its last day).
"""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema, model_validator

from linewarden.config.pydantic_base import StrictModel

_SPAN = re.compile(r"^\s*(\d{1,4})\s*(d|days?|w|weeks?|months?|y|years?)\s*$")
_UNITS: dict[str, Literal["days", "months"]] = {"d": "days", "w": "days", "m": "months", "y": "months"}
_FACTOR = {"d": 1, "w": 7, "m": 1, "y": 12}


class Span(StrictModel):
    """A length of calendar time: `count` days or `count` months (weeks are 7 days, years 12 months)."""

    count: Annotated[int, Field(ge=0, le=1200)]
    unit: Literal["days", "months"]

    def __str__(self) -> str:
        return f"{self.count} {self.unit if self.count != 1 else self.unit[:-1]}"

    def after(self, day: date, times: int = 1) -> date:
        """`day` moved forward by this span `times` times (backward when negative), in one step: months from
        the 31st land on each month's last day without drifting."""
        if self.unit == "days":
            return day + timedelta(days=self.count * times)
        return add_months(day, self.count * times)

    def before(self, day: date) -> date:
        return self.after(day, -1)


def add_months(day: date, months: int) -> date:
    """The same day `months` calendar months later (earlier when negative), or that month's last day when it is
    shorter: 31 Jan + 1 month = 28 (29) Feb."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _to_span(value: object) -> object:
    if isinstance(value, Span):
        return value
    if not isinstance(value, str):
        raise ValueError("a span of calendar time is a string like '90 days', '3 months', '1 year'")
    m = _SPAN.match(value)
    if m is None:
        raise ValueError(f"{value!r}: write a span like '90 days', '6 weeks', '3 months' or '1 year'")
    letter = "m" if m.group(2).startswith("mo") else m.group(2)[0]
    return Span(count=int(m.group(1)) * _FACTOR[letter], unit=_UNITS[letter])


# Dates far enough from the calendar's ends that every span added to them stays a date.
ContractDate = Annotated[date, Field(ge=date(1970, 1, 1), le=date(9000, 12, 31))]

CalendarSpan = Annotated[
    Span,
    BeforeValidator(_to_span),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "examples": ["90 days", "3 months", "1 year"]}),
]


class Term(StrictModel):
    """The contract's term: from `start` through `end` (both whole days in the contract's time zone), then,
    with `auto_renew`, renewal terms of `renewal_term` each, unless notice is given `renewal_notice` before
    a term ends."""

    start: ContractDate
    end: ContractDate = Field(description="the initial term's last day")
    auto_renew: bool = False
    renewal_term: CalendarSpan | None = Field(default=None, description="length of each renewal (with auto_renew)")
    renewal_notice: CalendarSpan = Field(
        default_factory=lambda: Span(count=90, unit="days"),
        description="notice of non-renewal (or of renegotiation) must be given this long before a term ends",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Term:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if self.auto_renew and (self.renewal_term is None or self.renewal_term.count == 0):
            raise ValueError("auto_renew needs renewal_term, e.g. '12 months'")
        if not self.auto_renew and self.renewal_term is not None:
            raise ValueError("renewal_term is only for auto_renew = true")
        if self.renewal_notice.before(self.end + timedelta(days=1)) < self.start:
            raise ValueError(f"renewal_notice of {self.renewal_notice} is longer than the initial term "
                             f"({self.start} to {self.end}): notice could never be given in time")
        if self.renewal_term is not None:
            first = self.end + timedelta(days=1)
            if self.renewal_notice.before(self.renewal_term.after(first)) < first:
                raise ValueError(f"renewal_notice of {self.renewal_notice} is longer than a renewal term of "
                                 f"{self.renewal_term}")
        return self


class Termination(StrictModel):
    """Who may end the contract how, and what the vendor owes when it ends."""

    for_convenience: CalendarSpan | None = Field(
        default=None, description="the plant may end the contract without cause on this much notice (none: not)"
    )
    vendor_notice: CalendarSpan | None = Field(
        default=None, description="notice the vendor must give to end it (none: the vendor may not)"
    )
    cure_period: CalendarSpan | None = Field(
        default=None, description="a notified material breach not cured within this allows termination for cause"
    )
    transition_period: CalendarSpan | None = Field(
        default=None, description="how long after the end the vendor must support the hand-over"
    )
    data_extraction: CalendarSpan | None = Field(
        default=None, description="within this after the end the vendor hands over all plant data"
    )
    duties: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        default_factory=list, description="the vendor's transition duties, a checklist"
    )


class EscrowItem(StrictModel):
    """One item the vendor deposits with an escrow agent (source code, build tools, documentation)."""

    item: str = Field(min_length=1, max_length=200)
    agent: str = Field(default="", max_length=200, description="the escrow agent holding it")
    deposited: ContractDate | None = Field(default=None, description="the last deposit (none: not deposited yet)")
    verified: ContractDate | None = Field(default=None, description="the last verification (none: never)")
    refresh: CalendarSpan | None = Field(default=None, description="the deposit must be renewed this often")
    release: str = Field(default="", max_length=500, description="when it is released to the plant")

    @model_validator(mode="after")
    def _dates(self) -> EscrowItem:
        if self.verified is not None and self.deposited is None:
            raise ValueError("verified without deposited: a deposit must be made before it is verified")
        if self.verified is not None and self.deposited is not None and self.verified < self.deposited:
            raise ValueError(f"verified {self.verified} is before deposited {self.deposited}")
        return self
