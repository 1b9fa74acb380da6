"""Plant IT's sink: incidents that are nobody's vendor's (out of scope, agent down, site link) as one JSON
POST per step to `plant_it.webhook_url`.

Body: {"version": 1, "event": "ticket.created" | "ticket.updated" | "ticket.commented" | "ticket.resolved",
"idempotency_key", "asset", "severity", "title", "description", "opened_at", "text"}, header
`Idempotency-Key: <incident id>`; a repeated `ticket.created` with a known key is the same notice.
"""

from __future__ import annotations

from typing import ClassVar

import httpx

from collector.ticketing.base import Ticket, TicketSink, VendorRef
from collector.ticketing.vendor_http import HTTP_TIMEOUT_S, request_json

PLANT_IT = "plant-it"


class PlantItSink(TicketSink):
    kind: ClassVar[str] = PLANT_IT

    def __init__(self, url: str) -> None:
        self._url = url
        self._client = httpx.AsyncClient(timeout=HTTP_TIMEOUT_S)

    async def _post(self, event: str, ticket: Ticket, text: str = "") -> None:
        body = {
            "version": 1,
            "event": event,
            "idempotency_key": ticket.idempotency_key,
            "asset": ticket.asset,
            "severity": ticket.severity.value,
            "title": ticket.title,
            "description": ticket.description,
            "opened_at": ticket.opened_at,
            "text": text,
        }
        headers = {"Idempotency-Key": ticket.idempotency_key}
        await request_json(self._client, PLANT_IT, "POST", self._url, json=body, headers=headers)

    async def create(self, ticket: Ticket) -> VendorRef:
        await self._post("ticket.created", ticket)
        return VendorRef(ticket.idempotency_key, ticket.idempotency_key)

    async def update(self, ref: VendorRef, ticket: Ticket) -> None:
        await self._post("ticket.updated", ticket)

    async def comment(self, ref: VendorRef, ticket: Ticket, text: str) -> None:
        await self._post("ticket.commented", ticket, text)

    async def resolve(self, ref: VendorRef, ticket: Ticket, note: str) -> None:
        await self._post("ticket.resolved", ticket, note)

    async def aclose(self) -> None:
        await self._client.aclose()
