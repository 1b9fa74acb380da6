"""The one interface every ticket sink implements, and the ticket it carries to the vendor."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from linewarden.config.base import Secret
from linewarden.domain import Severity
from linewarden.errors import TicketRejected
from linewarden.timeutil import ms_to_dt
from linewarden.wire import IncidentOpenedBody


@dataclass(frozen=True)
class Link:
    text: str
    url: str


@dataclass(frozen=True)
class Ticket:
    """What linewarden tells the vendor about one incident under one contract.

    `idempotency_key` is the incident id: every request a sink sends for this ticket carries it, so the vendor
    (or our look-up before create) can tell a retry from a new ticket. `cause` is the incident's stable cause
    code ("" when it has none): sinks that group alerts group by it, not by the reason text.
    """

    idempotency_key: str
    contract_id: str
    vendor: str
    asset: str
    severity: Severity
    title: str
    description: str
    opened_at: int
    links: tuple[Link, ...] = field(default_factory=tuple)
    cause: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Ticket:
        data: dict[str, Any] = json.loads(text)
        data["severity"] = Severity(data["severity"])
        data["links"] = tuple(Link(**link) for link in data["links"])
        return cls(**data)


@dataclass(frozen=True)
class VendorRef:
    """Where the ticket lives at the vendor: `id` addresses it in API calls, `display` is what people quote."""

    id: str
    display: str
    url: str | None = None


class TicketSink(ABC):
    """A vendor's ticket API. Methods raise TicketError when a retry may help, TicketRejected when not."""

    kind: ClassVar[str]

    async def find(self, idempotency_key: str) -> VendorRef | None:
        """The ticket already raised with this key, or None. Sinks whose vendor cannot be searched return None
        and rely on the vendor deduplicating a repeated create by the key (webhook receiver, PagerDuty)."""
        return None

    @abstractmethod
    async def create(self, ticket: Ticket) -> VendorRef: ...

    @abstractmethod
    async def update(self, ref: VendorRef, ticket: Ticket) -> None:
        """Bring the vendor's ticket in line with `ticket` (its severity was raised)."""

    @abstractmethod
    async def comment(self, ref: VendorRef, ticket: Ticket, text: str) -> None: ...

    @abstractmethod
    async def resolve(self, ref: VendorRef, ticket: Ticket, note: str) -> None: ...

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections; the sink is not used afterwards."""


def reveal(secret: Secret, what: str) -> str:
    """Read a sink's secret now; a missing one rejects the sink (retrying will not make it appear)."""
    try:
        return secret.reveal()
    except ValueError as exc:
        raise TicketRejected(f"{what}: {exc}") from None


def ticket_for_incident(
    body: IncidentOpenedBody, contract_id: str, vendor: str, links: tuple[Link, ...] = ()
) -> Ticket:
    """The ticket an incident_opened event becomes under one contract (the caller has checked scope and
    maintenance windows)."""
    asset = body.asset or body.target or (body.targets[0] if body.targets else body.incident)
    lines = [f"{asset} is {body.state.value} since {ms_to_dt(body.opened_at).isoformat()}: {body.reason}"]
    if body.in_production is not None:
        lines.append(f"Production {'running' if body.in_production else 'not running'} when the incident opened.")
    if body.criticality is not None:
        lines.append(f"Asset criticality: {body.criticality.value}")
    if body.targets:
        lines.append(f"Targets affected: {', '.join(body.targets)}")
    if body.cause:
        lines.append(f"Cause code: {body.cause}")
    return Ticket(
        idempotency_key=body.incident,
        contract_id=contract_id,
        vendor=vendor,
        asset=asset,
        severity=body.severity,
        title=f"{body.severity.value} {asset} {body.state.value}: {body.reason}",
        description="\n".join(lines),
        opened_at=body.opened_at,
        links=links,
        cause=body.cause or "",
    )
