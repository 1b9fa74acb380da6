"""ServiceNow sink: the Table API on the incident table, correlation_id = idempotency key.

Follows ServiceNow's Table API documentation
(https://developer.servicenow.com/dev.do#!/reference/api/zurich/rest/c_TableAPI,
https://www.servicenow.com/docs/r/zurich/api-reference/rest-api-explorer/t_GetStartedCreateInt.html):
basic auth, `Accept: application/json`, JSON bodies;
- look-up `GET /api/now/table/incident?sysparm_query=correlation_id=<key>&sysparm_fields=sys_id,number
  &sysparm_limit=1` -> 200 {result: [...]};
- create `POST /api/now/table/incident` {short_description, description, correlation_id, correlation_display,
  impact, urgency, assignment_group} -> 201 {result: {sys_id, number}};
- update, comment and resolve `PATCH /api/now/table/incident/<sys_id>` -> 200 {result: {...}}; resolving sets
  state 6 (Resolved) with close_code and close_notes, which the incident form requires.
Severity maps onto impact x urgency so the default priority lookup gives P1, P2, P3, P4 for S1..S4.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

from collector.ticketing.base import Ticket, TicketSink, VendorRef, reveal
from collector.ticketing.vendor_http import HTTP_TIMEOUT_S, field, request_json
from linewarden.config.contract import ServiceNowSink
from linewarden.domain import Severity

TABLE = "/api/now/table/incident"
RESOLVED_STATE = "6"
# (impact, urgency): 1 high, 2 medium, 3 low.
IMPACT_URGENCY = {Severity.S1: ("1", "1"), Severity.S2: ("1", "2"), Severity.S3: ("2", "2"), Severity.S4: ("2", "3")}


class ServiceNowTicketSink(TicketSink):
    kind: ClassVar[str] = "servicenow"

    def __init__(self, config: ServiceNowSink) -> None:
        self._config = config
        self._base = config.instance_url.rstrip("/")
        auth = httpx.BasicAuth(config.user, reveal(config.password, "servicenow password"))
        self._client = httpx.AsyncClient(auth=auth, timeout=HTTP_TIMEOUT_S, headers={"Accept": "application/json"})

    def _ref(self, record: Any) -> VendorRef:
        sys_id = field(record, "sys_id")
        return VendorRef(sys_id, field(record, "number"), f"{self._base}/nav_to.do?uri=incident.do?sys_id={sys_id}")

    async def _patch(self, ref: VendorRef, body: dict[str, str]) -> None:
        await request_json(self._client, "servicenow", "PATCH", f"{self._base}{TABLE}/{ref.id}", json=body)

    async def find(self, idempotency_key: str) -> VendorRef | None:
        params = {
            "sysparm_query": f"correlation_id={idempotency_key}",
            "sysparm_fields": "sys_id,number",
            "sysparm_limit": "1",
        }
        answer = await request_json(self._client, "servicenow", "GET", self._base + TABLE, params=params)
        records = answer.get("result") if isinstance(answer, dict) else None
        return self._ref(records[0]) if records else None

    async def create(self, ticket: Ticket) -> VendorRef:
        impact, urgency = IMPACT_URGENCY[ticket.severity]
        body = {
            "short_description": ticket.title[:160],
            "description": _description(ticket),
            "correlation_id": ticket.idempotency_key,
            "correlation_display": "linewarden",
            "impact": impact,
            "urgency": urgency,
        }
        if self._config.assignment_group:
            body["assignment_group"] = self._config.assignment_group
        answer = await request_json(self._client, "servicenow", "POST", self._base + TABLE, json=body)
        return self._ref(answer.get("result") if isinstance(answer, dict) else None)

    async def update(self, ref: VendorRef, ticket: Ticket) -> None:
        impact, urgency = IMPACT_URGENCY[ticket.severity]
        note = f"linewarden: severity raised to {ticket.severity.value}"
        await self._patch(ref, {"impact": impact, "urgency": urgency, "work_notes": note})

    async def comment(self, ref: VendorRef, ticket: Ticket, text: str) -> None:
        await self._patch(ref, {"comments": text})

    async def resolve(self, ref: VendorRef, ticket: Ticket, note: str) -> None:
        body = {"state": RESOLVED_STATE, "close_code": self._config.close_code, "close_notes": note or "Resolved"}
        await self._patch(ref, body)

    async def aclose(self) -> None:
        await self._client.aclose()


def _description(ticket: Ticket) -> str:
    lines = [ticket.description, "", f"Severity: {ticket.severity.value}", f"Asset: {ticket.asset}"]
    lines += [f"{link.text}: {link.url}" for link in ticket.links]
    return "\n".join(lines)
