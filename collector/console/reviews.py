"""Disputes and exports in the console: a vendor user disputes an incident of its own contract, plant IT
or an admin settles it, and the contract page offers the monthly review (PDF) and each report table (CSV).

The console only checks the user's role and scope and turns form fields into values; the rules, the audit
entries and the figures are collector.disputes' and collector.exports'. Evidence is given as links: the
console's forms are URL-encoded, so evidence files are uploaded through the API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from collector.audit_evidence import Checkpoint
from collector.console.errors import ConsoleError, NotAllowed
from collector.console.pages import SETTLE_ROLES, NotFound, local_ms, may_dispute
from collector.console.users import User
from collector.dispute_records import DisputeRecord
from collector.disputes import (
    DisputeError,
    DisputeForbidden,
    DisputeNotFound,
    open_dispute,
    settle_dispute,
)
from collector.exports import TABLES, monthly_review_pdf, report_csv_tables
from collector.reporting import reports, with_checkpoint
from collector.scoping import sees_vendor
from linewarden.errors import LinewardenError
from linewarden.sla.disputes import FIELDS, OUTCOMES, TIMING_FIELDS
from linewarden.sla.periods import month_containing

if TYPE_CHECKING:
    from collector.console.app import Deps


def actor(user: User) -> str:
    return f"console:{user.username}"


def _value(deps: Deps, field: str, text: str) -> object:
    """A form's text as the value collector.disputes expects: a local time without a zone is the console's."""
    text = text.strip()
    if field in TIMING_FIELDS:
        return local_ms(deps, text, field)
    if field == "excluded":
        return {"true": True, "yes": True, "false": False, "no": False}.get(text.lower(), text)
    return text


def _step(call: Callable[[], DisputeRecord]) -> DisputeRecord:
    try:
        record = call()
    except (DisputeNotFound, DisputeForbidden) as exc:
        raise NotFound(str(exc)) from None
    except DisputeError as exc:
        raise ConsoleError(str(exc)) from None
    return record


def open_from_form(deps: Deps, user: User, incident_id: str, contracts: set[str], data: dict[str, str],
                   origin: str) -> DisputeRecord:
    """The vendor user's dispute from the incident page's form (`contracts`: those the page shows)."""
    allowed = may_dispute(user, deps, contracts)
    if not allowed:
        raise NotAllowed("only a vendor user may dispute an incident, and only under its own contract")
    contract_id = data.get("contract", "")
    if contract_id not in allowed:
        raise NotAllowed(f"you may not dispute under contract {contract_id!r}")
    field = data.get("field", "")
    if field not in FIELDS:
        raise ConsoleError(f"field: one of {', '.join(FIELDS)}")
    links = [line.strip() for line in data.get("links", "").splitlines() if line.strip()]
    value = _value(deps, field, data.get("value", ""))
    assert user.vendor is not None
    vendor = user.vendor
    return _step(lambda: open_dispute(
        deps.store, deps.book, deps.evidence_dir, contract_id, incident_id, vendor, field, value,
        data.get("reason", ""), links, [], actor(user), origin, deps.clock(),
    ))  # fmt: skip


def settle_from_form(deps: Deps, user: User, found: DisputeRecord, data: dict[str, str], origin: str) -> DisputeRecord:
    """Plant IT's or an admin's decision on an open dispute (one the user may see), from the incident page."""
    if user.role not in SETTLE_ROLES:
        raise NotAllowed(f"a {user.role} user may look at disputes but not settle them")
    outcome = data.get("outcome", "")
    if outcome not in OUTCOMES:
        raise ConsoleError(f"outcome: one of {', '.join(OUTCOMES)}")
    value = _value(deps, found.field, data.get("value", "")) if outcome == "amended" else None
    return _step(lambda: settle_dispute(deps.store, found.id, outcome, data.get("reason", ""), value,
                                        actor(user), origin, deps.clock()))


def _checked_period(deps: Deps, user: User, contract_id: str, period: str) -> None:
    found = deps.book.contracts.get(contract_id)
    if found is None or not sees_vendor(user.viewer, found.contract.vendor):
        raise NotFound(f"no contract {contract_id} that you may see")
    current = month_containing(deps.clock(), found.contract.timezone).label
    if len(period) != 7 or period[4] != "-" or not (period[:4] + period[5:]).isdigit() or period > current:
        raise ConsoleError(f"period {period!r}: give a month (YYYY-MM) that has begun")


def review_pdf(deps: Deps, user: User, contract_id: str, period: str, checkpoint: Checkpoint | None) -> bytes:
    _checked_period(deps, user, contract_id, period)
    try:
        return monthly_review_pdf(deps.store, deps.book, period, contract_id, None, deps.clock(),
                                  checkpoint=checkpoint)
    except (ValueError, LinewardenError) as exc:
        raise ConsoleError(f"period {period!r}: {exc}") from None


def table_csv(deps: Deps, user: User, contract_id: str, period: str, table: str,
              checkpoint: Checkpoint | None) -> str:
    if table not in TABLES:
        raise NotFound(f"no table {table!r}: one of {', '.join(TABLES)}")
    _checked_period(deps, user, contract_id, period)
    try:
        return report_csv_tables(deps.store, deps.book, period, contract_id, None, deps.clock(),
                                 checkpoint=checkpoint)[table]
    except (ValueError, LinewardenError) as exc:
        raise ConsoleError(f"period {period!r}: {exc}") from None


def report_json(
    deps: Deps, user: User, contract_id: str, period: str, checkpoint: Checkpoint | None
) -> list[dict[str, Any]]:
    """The contract's report as the API's `GET /reports/<month>?contract=<id>` gives it (a list of one)."""
    _checked_period(deps, user, contract_id, period)
    try:
        done = reports(deps.store, deps.book, period, contract_id, now_ms=deps.clock())
    except (ValueError, LinewardenError) as exc:
        raise ConsoleError(f"period {period!r}: {exc}") from None
    return [with_checkpoint(r, checkpoint) for r in done]
