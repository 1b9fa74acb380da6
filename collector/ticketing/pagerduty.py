"""PagerDuty sink: Events API v2, dedup_key = idempotency key.

Follows https://developer.pagerduty.com/docs/events-api-v2/trigger-events/ (PagerDuty/developer-docs
docs/events-API-v2/02-Trigger-Events.md): `POST /v2/enqueue`, JSON {routing_key (the 32-character integration
key, in the body: there is no auth header), event_action trigger|acknowledge|resolve, dedup_key (<= 255),
payload {summary (<= 1024), source, severity critical|error|warning|info, timestamp, component, group, class,
custom_details}, links, client} -> 202 {status, message, dedup_key}.
Events with the same dedup_key apply to the open alert, so a repeated trigger is safe and there is no look-up:
a raised severity and a comment are triggers with the same key (they land in the alert's log).
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

from collector.ticketing.base import Ticket, TicketSink, VendorRef, reveal
from collector.ticketing.vendor_http import HTTP_TIMEOUT_S, request_json
from linewarden.config.contract import PagerDutySink
from linewarden.domain import Severity
from linewarden.timeutil import ms_to_dt

SEVERITY = {Severity.S1: "critical", Severity.S2: "error", Severity.S3: "warning", Severity.S4: "info"}


class PagerDutyTicketSink(TicketSink):
    kind: ClassVar[str] = "pagerduty"

    def __init__(self, config: PagerDutySink) -> None:
        self._url = config.events_url
        self._routing_key = reveal(config.routing_key, "pagerduty routing_key")
        self._client = httpx.AsyncClient(timeout=HTTP_TIMEOUT_S)

    async def _send(self, action: str, ticket: Ticket, note: str = "") -> Any:
        event: dict[str, Any] = {
            "routing_key": self._routing_key,
            "event_action": action,
            "dedup_key": ticket.idempotency_key,
        }
        if action == "trigger":
            details = {"contract": ticket.contract_id, "vendor": ticket.vendor, "description": ticket.description}
            if note:
                details["note"] = note
            event["payload"] = {
                "summary": ticket.title[:1024],
                "source": ticket.asset,
                "severity": SEVERITY[ticket.severity],
                "timestamp": ms_to_dt(ticket.opened_at).isoformat(),
                "component": ticket.asset,
                "group": ticket.contract_id,
                "class": ticket.cause or "linewarden incident",  # PagerDuty groups alerts by class
                "custom_details": details,
            }
            event["client"] = "linewarden"
            event["links"] = [{"href": link.url, "text": link.text} for link in ticket.links]
        return await request_json(self._client, "pagerduty", "POST", self._url, json=event)

    async def create(self, ticket: Ticket) -> VendorRef:
        answer = await self._send("trigger", ticket)
        key = answer.get("dedup_key") if isinstance(answer, dict) else None
        key = key if isinstance(key, str) else ticket.idempotency_key
        return VendorRef(key, key)

    async def update(self, ref: VendorRef, ticket: Ticket) -> None:
        await self._send("trigger", ticket)

    async def comment(self, ref: VendorRef, ticket: Ticket, text: str) -> None:
        await self._send("trigger", ticket, text)

    async def acknowledge(self, ticket: Ticket) -> None:
        await self._send("acknowledge", ticket)

    async def resolve(self, ref: VendorRef, ticket: Ticket, note: str) -> None:
        await self._send("resolve", ticket)

    async def aclose(self) -> None:
        await self._client.aclose()
