"""The vendor and plant API (FastAPI; OpenAPI at /openapi.json, docs at /docs).

Every call carries `Authorization: Bearer <token>` (see collector/tokens.py). A vendor token sees and
touches only tickets of its own vendor's contracts: another vendor's ticket answers 403.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, Field, ValidationError

from collector.maintenance import FAR_FUTURE_MS, record_window, stamp
from collector.reporting import parse_as_of, reports
from collector.scoping import Viewer, sees_vendor
from collector.store.base import Store
from collector.ticketing.lifecycle import Lifecycle, TicketView, get_ticket, list_tickets
from collector.tokens import TokenInfo, authenticate
from linewarden.book import ContractBook
from linewarden.domain import Criticality, Severity
from linewarden.errors import BackdateForbidden, MaintenanceRefused, TicketNotFound, TicketStateError
from linewarden.wire import MaintenanceWindowWire

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class Principal(BaseModel):
    token_id: str
    role: str
    vendor: str | None
    origin: str

    @property
    def viewer(self) -> Viewer:
        return Viewer(self.role, self.vendor)

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.vendor}" if self.vendor else f"{self.role}:{self.token_id}"


class Triage(BaseModel):
    severity: Severity


class Note(BaseModel):
    note: str = ""


class PauseBody(BaseModel):
    reason: str = Field(min_length=1)


class RcaDocument(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    content_base64: str


class RcaBody(BaseModel):
    link: str | None = Field(default=None, pattern=r"^https?://.+")
    document: RcaDocument | None = None


class WindowBody(BaseModel):
    site: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: str = Field(default="maintenance", pattern=r"^(maintenance|change)$")
    start: int
    end: int
    assets: list[str] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)
    whole_site: bool = False
    lines: list[str] = Field(default_factory=list)
    asset_classes: list[Criticality] = Field(default_factory=list)
    reason: str = ""
    announced_at: int | None = None  # back-dating: admin tokens only, with backdate_reason
    backdate_reason: str = ""


def _principal(request: Request) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    info: TokenInfo | None = None
    if scheme.lower() == "bearer" and token:
        info = authenticate(request.app.state.store, token.strip())
    if info is None:
        raise HTTPException(401, "missing, unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
    origin = request.client.host if request.client else "unknown"
    return Principal(token_id=info.id, role=info.role, vendor=info.vendor, origin=origin)


Caller = Annotated[Principal, Depends(_principal)]


def _require(caller: Principal, *roles: str) -> None:
    if caller.role != "admin" and caller.role not in roles:
        raise HTTPException(403, f"a {caller.role} token may not do this")


def _ticket(
    request: Request, caller: Principal, contract_id: str, incident_id: str, *roles: str
) -> TicketView:
    """The ticket, if the caller may act on it: one of `roles` (any role when none given), and a vendor only
    on its own contracts' tickets."""
    if roles:
        _require(caller, *roles)
    found = get_ticket(request.app.state.store, contract_id, incident_id)
    if found is None:
        raise HTTPException(404, "no such ticket")
    if not sees_vendor(caller.viewer, found.vendor):
        raise HTTPException(403, "this ticket belongs to another vendor's contract")
    return found


def _step(call: Callable[[], TicketView]) -> dict[str, Any]:
    try:
        return call().as_dict()
    except TicketNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except TicketStateError as exc:
        raise HTTPException(409, str(exc)) from None


def create_app(
    store: Store,
    lifecycle: Lifecycle,
    clock: Callable[[], int],
    rca_dir: Path,
    on_maintenance: Callable[[str], None] | None = None,
    book: ContractBook | None = None,
) -> FastAPI:
    """`on_maintenance(site)` is called (from a worker thread) after a window of `site` is recorded; `book`
    holds the contracts the reports are of (none: no reports)."""
    app = FastAPI(title="linewarden collector API", version="1")
    app.state.store = store
    contracts = book if book is not None else ContractBook({}, {})

    @app.get("/reports/{period}")
    def report(
        caller: Caller, period: str, contract: str | None = None, as_of: str | None = None
    ) -> list[dict[str, Any]]:
        """SLA reports of the month `period` (YYYY-MM), schema linewarden.sla-report/2, as known at `as_of`:
        ISO 8601 with its zone, or ms since the epoch; default now for a month not over yet, else its end.
        A vendor sees its own contracts only."""
        if not _MONTH.match(period):
            raise HTTPException(422, f"period {period!r}: use YYYY-MM")
        try:
            as_of_ms = None if as_of is None else int(as_of) if as_of.isdigit() else parse_as_of(as_of)
        except ValueError as exc:
            raise HTTPException(422, f"as_of: {exc}") from None
        if contract is not None:
            found = contracts.contracts.get(contract)
            if found is None:
                raise HTTPException(404, f"no contract {contract!r}")
            if not sees_vendor(caller.viewer, found.contract.vendor):
                raise HTTPException(403, "this contract belongs to another vendor")
        try:
            done = reports(store, contracts, period, contract, as_of_ms=as_of_ms, now_ms=clock())
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return [r.to_dict() for r in done if sees_vendor(caller.viewer, r.vendor)]

    @app.get("/tickets")
    def tickets(request: Request, caller: Caller) -> list[dict[str, Any]]:
        """Tickets the caller may see: a vendor's own, or all for plant and admin."""
        vendor = caller.vendor if caller.role == "vendor" else None
        return [t.as_dict() for t in list_tickets(store, vendor)]

    @app.get("/tickets/{contract_id}/{incident_id}")
    def ticket(request: Request, caller: Caller, contract_id: str, incident_id: str) -> dict[str, Any]:
        return _ticket(request, caller, contract_id, incident_id).as_dict()

    @app.post("/tickets/{contract_id}/{incident_id}/acknowledge")
    def acknowledge(request: Request, caller: Caller, contract_id: str, incident_id: str) -> dict[str, Any]:
        """The vendor acknowledges (also the target of a vendor system's inbound webhook)."""
        _ticket(request, caller, contract_id, incident_id, "vendor")
        return _step(lambda: lifecycle.acknowledge(incident_id, contract_id, caller.actor, caller.origin))

    @app.post("/tickets/{contract_id}/{incident_id}/triage")
    def triage(request: Request, caller: Caller, contract_id: str, incident_id: str, body: Triage) -> dict[str, Any]:
        """The vendor's severity; the edge's is kept beside it."""
        _ticket(request, caller, contract_id, incident_id, "vendor")
        return _step(lambda: lifecycle.triage(incident_id, contract_id, body.severity, caller.actor, caller.origin))

    @app.post("/tickets/{contract_id}/{incident_id}/resolution")
    def resolution(request: Request, caller: Caller, contract_id: str, incident_id: str, body: Note) -> dict[str, Any]:
        """A resolution claim, verified against the measured state: still DOWN/DEGRADED reopens the ticket."""
        _ticket(request, caller, contract_id, incident_id, "vendor")
        return _step(
            lambda: lifecycle.claim_resolution(incident_id, contract_id, body.note, caller.actor, caller.origin)
        )

    @app.post("/tickets/{contract_id}/{incident_id}/rca")
    def rca(request: Request, caller: Caller, contract_id: str, incident_id: str, body: RcaBody) -> dict[str, Any]:
        """The root-cause report: a link, or a document (base64) kept in the collector's data directory."""
        _ticket(request, caller, contract_id, incident_id, "vendor")
        if body.link is None and body.document is None:
            raise HTTPException(422, "give a link or a document")
        document: dict[str, Any] | None = None
        if body.document is not None:
            try:
                data = base64.b64decode(body.document.content_base64, validate=True)
            except (binascii.Error, ValueError):
                raise HTTPException(422, "document.content_base64 is not base64") from None
            digest = hashlib.sha256(data).hexdigest()
            rca_dir.mkdir(parents=True, exist_ok=True)
            (rca_dir / digest).write_bytes(data)
            document = {"name": body.document.name, "sha256": digest, "bytes": len(data)}
        return _step(
            lambda: lifecycle.receive_rca(incident_id, contract_id, body.link, document, caller.actor, caller.origin)
        )

    @app.post("/tickets/{contract_id}/{incident_id}/pause")
    def pause(request: Request, caller: Caller, contract_id: str, incident_id: str, body: PauseBody) -> dict[str, Any]:
        """Plant IT: the vendor waits on the plant; the clock stops (if the contract allows)."""
        _ticket(request, caller, contract_id, incident_id, "plant")
        return _step(lambda: lifecycle.pause(incident_id, contract_id, body.reason, caller.actor, caller.origin))

    @app.post("/tickets/{contract_id}/{incident_id}/resume")
    def resume(request: Request, caller: Caller, contract_id: str, incident_id: str) -> dict[str, Any]:
        _ticket(request, caller, contract_id, incident_id, "plant")
        return _step(lambda: lifecycle.resume(incident_id, contract_id, caller.actor, caller.origin))

    @app.post("/tickets/{contract_id}/{incident_id}/workaround")
    def workaround(request: Request, caller: Caller, contract_id: str, incident_id: str, body: Note) -> dict[str, Any]:
        """Plant IT accepts a workaround: the resolution clock stops."""
        _ticket(request, caller, contract_id, incident_id, "plant")
        return _step(
            lambda: lifecycle.accept_workaround(incident_id, contract_id, body.note, caller.actor, caller.origin)
        )

    @app.get("/maintenance-windows")
    def windows(caller: Caller, start: int = 0, end: int = FAR_FUTURE_MS) -> list[dict[str, Any]]:
        _require(caller, "plant")
        return [{**w.__dict__, "back_dated": w.back_dated} for w in store.maintenance_windows(start, end)]

    @app.post("/maintenance-windows", status_code=201)
    def add_window(caller: Caller, body: WindowBody) -> dict[str, Any]:
        """Record a maintenance or change window, announced now (the notice counts from here); an earlier
        `announced_at` only from an admin token with a `backdate_reason`. 422 for a window that covers nothing."""
        _require(caller, "plant")
        if body.end <= body.start:
            raise HTTPException(422, "end must be after start")
        now = clock()
        try:
            announced_at, backdate_reason = stamp(
                body.announced_at, now, admin=caller.role == "admin", reason=body.backdate_reason
            )
            wire = MaintenanceWindowWire(
                id=f"w-{uuid.uuid4().hex[:12]}", kind="change" if body.kind == "change" else "maintenance",
                start=body.start, end=body.end, assets=body.assets, services=body.services,
                whole_site=body.whole_site, lines=body.lines, asset_classes=body.asset_classes,
                announced_at=announced_at, announced_by=caller.actor, reason=body.reason,
                back_dated=bool(backdate_reason),
            )
            unmatched = record_window(store, lifecycle.book, body.site, wire, now, backdate_reason, caller.actor,
                                      caller.origin)  # fmt: skip
        except BackdateForbidden as exc:
            raise HTTPException(403, str(exc)) from None
        except (MaintenanceRefused, ValidationError) as exc:
            raise HTTPException(422, str(exc)) from None
        if on_maintenance is not None:
            on_maintenance(body.site)
        return {"site": body.site, **wire.model_dump(mode="json"), "unmatched": unmatched}

    return app
