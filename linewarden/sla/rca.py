"""Root-cause reports: which incidents need one, when it is due and whether it came on time.

An incident needs an RCA when its edge severity is listed in the contract's `rca.severities` and its ticket
was raised by `as_of`: a vendor never told of an outage (one inside an approved maintenance window, or
one whose ticket was never recorded) owes no report on it. It is due
`rca.due` after the measured restoration: business days of the support coverage calendar
(`add_business_days`), or a plain elapsed duration. Status: "on_time" (received ≤ due), "late"
(received after due, or not received and already due at `as_of`), "pending" (not yet due), or
"not_due" (not restored yet, so no deadline runs). Events after `as_of` are not known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from linewarden.config.contract import BusinessDays, RcaPolicy
from linewarden.sla.coverage import CoverageCalendar
from linewarden.sla.models import Incident

RcaStatus = Literal["on_time", "late", "pending", "not_due"]


@dataclass(frozen=True)
class RcaResult:
    incident_id: str
    due_ms: int | None
    received_ms: int | None
    status: RcaStatus


def rca_result(incident: Incident, policy: RcaPolicy, calendar: CoverageCalendar, as_of_ms: int) -> RcaResult | None:
    notified = incident.notified_at_ms
    if incident.severity not in policy.severities or notified is None or notified > as_of_ms:
        return None
    received = incident.rca_received_at_ms
    if received is not None and received > as_of_ms:
        received = None
    restored = incident.restored_at_ms
    if restored is None or restored > as_of_ms:
        return RcaResult(incident.id, None, received, "not_due")
    if isinstance(policy.due, BusinessDays):
        due = calendar.add_business_days(restored, policy.due.days)
    else:
        due = restored + int(policy.due.total_seconds() * 1000)
    if received is not None:
        status: RcaStatus = "on_time" if received <= due else "late"
    else:
        status = "late" if due <= as_of_ms else "pending"
    return RcaResult(incident.id, due, received, status)
