"""Webhook sink: one signed JSON POST per ticket step to the vendor's (or a bridge's) URL.

Request (every step): `POST <url>` with
  Content-Type: application/json
  Idempotency-Key: <incident id>                 the same for every step of one ticket
  X-Linewarden-Event: ticket.created | ticket.updated | ticket.commented | ticket.resolved
  X-Linewarden-Signature: t=<unix ms>,v1=<hex>   v1 = HMAC-SHA256(secret, "<t>." + raw body)
Body (JSON object):
  {"version": 1, "event": "...", "idempotency_key": "...", "contract": "...", "vendor": "...", "asset": "...",
   "severity": "S1".."S4", "title": "...", "description": "...", "opened_at": <unix ms>,
   "links": [{"text": "...", "url": "..."}], "ticket_ref": "<receiver's id>" (after create), "text": "..."}
   (`text` holds the comment or the resolution note; "" otherwise.)
The receiver verifies the signature (constant-time compare, reject timestamps older than a few minutes) and
must treat a repeated `ticket.created` with a known Idempotency-Key as the same ticket: linewarden re-sends
with the same key after a timeout or a restart. Any 2xx is success; a create may answer
`{"ticket_id": "...", "url": "..."}`, else the idempotency key is the ticket's reference.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, ClassVar

import httpx

from collector.ticketing.base import Ticket, TicketSink, VendorRef, reveal
from collector.ticketing.vendor_http import HTTP_TIMEOUT_S, request_json
from linewarden.config.contract import WebhookSink


def signature(secret: str, timestamp_ms: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp_ms}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp_ms},v1={mac}"


def verify(secret: str, header: str | None, body: bytes, now_ms: int, max_age_ms: int = 300_000) -> bool:
    """What a receiver does with `X-Linewarden-Signature`: the MAC matches (constant time) and the timestamp
    is no older than `max_age_ms` (nor that far in the future)."""
    fields = dict(part.split("=", 1) for part in (header or "").split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now_ms - timestamp) > max_age_ms:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), f"t={timestamp},v1={fields.get('v1', '')}")


class WebhookTicketSink(TicketSink):
    kind: ClassVar[str] = "webhook"

    def __init__(self, config: WebhookSink) -> None:
        self._url = config.url
        self._secret = reveal(config.secret, "webhook secret")
        self._client = httpx.AsyncClient(timeout=HTTP_TIMEOUT_S)

    async def _post(self, event: str, ticket: Ticket, ref: VendorRef | None = None, text: str = "") -> Any:
        body = {
            "version": 1,
            "event": event,
            "idempotency_key": ticket.idempotency_key,
            "contract": ticket.contract_id,
            "vendor": ticket.vendor,
            "asset": ticket.asset,
            "severity": ticket.severity.value,
            "title": ticket.title,
            "description": ticket.description,
            "opened_at": ticket.opened_at,
            "links": [{"text": link.text, "url": link.url} for link in ticket.links],
            "ticket_ref": ref.id if ref else None,
            "text": text,
        }
        raw = json.dumps(body, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": ticket.idempotency_key,
            "X-Linewarden-Event": event,
            "X-Linewarden-Signature": signature(self._secret, int(time.time() * 1000), raw),
        }
        return await request_json(self._client, "webhook", "POST", self._url, content=raw, headers=headers)

    async def create(self, ticket: Ticket) -> VendorRef:
        answer = await self._post("ticket.created", ticket)
        if isinstance(answer, dict) and isinstance(answer.get("ticket_id"), str):
            url = answer.get("url")
            return VendorRef(answer["ticket_id"], answer["ticket_id"], url if isinstance(url, str) else None)
        return VendorRef(ticket.idempotency_key, ticket.idempotency_key)

    async def update(self, ref: VendorRef, ticket: Ticket) -> None:
        await self._post("ticket.updated", ticket, ref)

    async def comment(self, ref: VendorRef, ticket: Ticket, text: str) -> None:
        await self._post("ticket.commented", ticket, ref, text)

    async def resolve(self, ref: VendorRef, ticket: Ticket, note: str) -> None:
        await self._post("ticket.resolved", ticket, ref, note)

    async def aclose(self) -> None:
        await self._client.aclose()
