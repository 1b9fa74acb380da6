"""The demo's vendors: a webhook receiver that prints each ticket step it gets, and a support desk per vendor
that answers through the collector's API with its own vendor token (acknowledge, claim resolution).

The receiver checks each request's HMAC signature with `collector.ticketing.webhook.verify`, as a vendor's
receiver must (collector/ticketing/webhook.py), and refuses an unsigned or forged one with 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from collector.ticketing.webhook import verify
from simulators.http import JsonHttpServer, Request, Response, Router

Say = Callable[[str], None]
POLL_S = 0.2


@dataclass(frozen=True)
class Desk:
    """How one vendor behaves: acknowledges `ack_after_s` after a ticket arrives; claims the fix either at
    once (`claims_early`, before linewarden has measured it) or when told the service is restored."""

    vendor: str
    display: str
    prefix: str
    ack_after_s: float
    claims_early: bool


@dataclass
class _Ticket:
    desk: Desk
    contract: str
    incident: str
    ref: str
    asset: str
    arrived: float
    acknowledged: bool = False
    restored: bool = False
    claimed: bool = False
    events: list[str] = field(default_factory=list)


class DemoVendors:
    """`await start()`; `url` is the webhook base (`<url>/<vendor>`); `run(api_url, tokens, stop)` plays the desks."""

    def __init__(self, say: Say, desks: list[Desk], secret: str, host: str = "127.0.0.1") -> None:
        self._say = say
        self._secret = secret
        self._desks = {d.vendor: d for d in desks}
        self.tickets: dict[str, _Ticket] = {}  # by idempotency key (the incident id)
        router = Router()
        router.add("POST", "/{vendor}", self._hook)
        self._http = JsonHttpServer(router, host, 0)

    @property
    def url(self) -> str:
        return f"http://{self._http.host}:{self._http.port}"

    async def start(self) -> None:
        await self._http.start()

    async def stop(self) -> None:
        await self._http.stop()

    async def _hook(self, request: Request) -> Response:
        signed = request.headers.get("x-linewarden-signature")
        if not verify(self._secret, signed, request.body, int(time.time() * 1000)):
            self._say("    a webhook call without a valid signature was refused (401)")
            return Response(401, {"error": "missing or bad X-Linewarden-Signature"})
        desk = self._desks.get(request.params["vendor"])
        body = request.json()
        if desk is None or not isinstance(body, dict):
            return Response(404, {"error": "no such vendor"})
        event, key = str(body.get("event")), str(body.get("idempotency_key"))
        ticket = self.tickets.get(key)
        if ticket is None:
            if event != "ticket.created":
                return Response(404, {"error": "unknown ticket"})
            ticket = self.tickets[key] = _Ticket(
                desk, str(body.get("contract")), key, f"{desk.prefix}-{len(self.tickets) + 101}",
                str(body.get("asset")), time.monotonic(),
            )
            self._say(f"    {desk.display} webhook received ticket.created -> {ticket.ref} "
                      f"[{body.get('severity')}] {body.get('title')}")
        elif event != "ticket.created":
            text = str(body.get("text") or "")
            self._say(f"    {desk.display} webhook received {event} for {ticket.ref}" + (f": {text}" if text else ""))
            if "restored" in text:
                ticket.restored = True
        ticket.events.append(event)
        return Response(200, {"ticket_id": ticket.ref})

    async def run(self, api_url: str, tokens: dict[str, str], stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
            while not stop.is_set():
                for ticket in list(self.tickets.values()):
                    try:
                        await self._act(http, tokens[ticket.desk.vendor], ticket)
                    except httpx.HTTPError as exc:
                        self._say(f"    {ticket.desk.display} could not reach the collector API: {exc}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL_S)

    async def _act(self, http: httpx.AsyncClient, token: str, t: _Ticket) -> None:
        desk, auth = t.desk, {"Authorization": f"Bearer {token}"}
        path = f"/tickets/{t.contract}/{t.incident}"
        waited = time.monotonic() - t.arrived
        if not t.acknowledged and waited >= desk.ack_after_s:
            answer = await _post(http, path + "/acknowledge", auth)
            t.acknowledged = True
            self._say(f"{desk.display} acknowledges {t.ref} via the collector API, {waited:.0f} s after it arrived "
                      f"(ticket phase: {answer.get('phase')})")
        if t.acknowledged and not t.claimed and (desk.claims_early or t.restored):
            note = "Fixed on our side." if desk.claims_early else "Restored, see the measured recovery."
            answer = await _post(http, path + "/resolution", auth, {"note": note})
            t.claimed = True
            phase = answer.get("phase")
            if phase == "reopened":
                self._say(f"{desk.display} claims {t.ref} is fixed, but linewarden still measures {t.asset} "
                          "unhealthy: claim refused, ticket reopened, the clock keeps running")
            else:
                self._say(f"{desk.display} claims {t.ref} is fixed; linewarden's measurement agrees "
                          f"(ticket phase: {phase})")


async def _post(http: httpx.AsyncClient, path: str, auth: dict[str, str], body: Any = None) -> dict[str, Any]:
    response = await http.post(path, headers=auth, json=body)
    response.raise_for_status()
    answer = response.json()
    return answer if isinstance(answer, dict) else {}
