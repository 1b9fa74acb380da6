"""Fake webhook receiver as collector/ticketing/webhook.py specifies it: signature checked, Idempotency-Key
required, one ticket per key however often `ticket.created` arrives."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from tests.fakes.server import FakeVendor, Rejected, Reply, Request, require_json

_SIGNATURE = re.compile(r"^t=(\d+),v1=([0-9a-f]{64})$")
EVENTS = {"ticket.created", "ticket.updated", "ticket.commented", "ticket.resolved"}


class FakeWebhookReceiver(FakeVendor):
    def __init__(self, secret: str, path: str = "/hooks/linewarden") -> None:
        super().__init__()
        self._secret = secret.encode()
        self.path = path
        self.tickets: dict[str, dict[str, Any]] = {}  # idempotency key -> {id, events}

    def handle(self, req: Request) -> Reply:
        if req.method != "POST" or req.path != self.path:
            raise Rejected(404, {"error": "not found"})
        m = _SIGNATURE.match(req.headers.get("X-Linewarden-Signature") or "")
        if m is None:
            raise Rejected(401, {"error": "missing or malformed signature"})
        expected = hmac.new(self._secret, m.group(1).encode() + b"." + req.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, m.group(2)):
            raise Rejected(401, {"error": "bad signature"})
        key = req.headers.get("Idempotency-Key")
        body = require_json(req)
        if not key or body.get("idempotency_key") != key:
            raise Rejected(400, {"error": "Idempotency-Key header missing or not the body's idempotency_key"})
        event = body.get("event")
        if event not in EVENTS or req.headers.get("X-Linewarden-Event") != event:
            raise Rejected(400, {"error": "unknown event"})
        with self.lock:
            ticket = self.tickets.get(key)
            if event == "ticket.created" and ticket is None:
                ticket = self.tickets[key] = {"id": f"WH-{len(self.tickets) + 1}", "events": []}
            if ticket is None:
                raise Rejected(404, {"error": "unknown ticket"})
            ticket["events"].append(body)
        if event == "ticket.created":
            self.maybe_stall()
            return Reply(200, {"ticket_id": ticket["id"], "url": f"{self.url}/tickets/{ticket['id']}"})
        return Reply(204)
