"""The vendor and plant API (FastAPI; OpenAPI at /openapi.json, docs at /docs).

Every call carries `Authorization: Bearer <token>` (see collector/tokens.py). A vendor token sees and
touches only tickets of its own vendor's contracts: another vendor's ticket answers 403. A token narrowed
to scopes (collector/tokens.py) answers 403 outside them; an expired one 401 saying so. Each call made with
a token is logged (logger `collector.api.access`: token id, actor, method, path, status); each change made
with one is audit-logged as `api.call` with the token id, and failed authentications as `auth.failed`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import msgspec
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as FastApiPath
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from collector.api.limits import TOO_LARGE, BodyLimit
from collector.audit import append_entry
from collector.audit_evidence import Checkpoint
from collector.change_records import ApprovalRefused, approvals, approve, revoke
from collector.dispute_records import DisputeRecord
from collector.disputes import (
    DisputeForbidden,
    DisputeNotFound,
    DisputeRefused,
    DisputeStateError,
    EvidenceFile,
    evidence_path,
    get_dispute,
    list_disputes,
    open_dispute,
    settle_dispute,
)
from collector.escalation.records import acknowledge as acknowledge_notice
from collector.escalation.records import notifications
from collector.esign import evidence_of
from collector.exports import TABLES, csv_tables, monthly_review_pdf, tables_zip
from collector.lifecycle_view import life, renewals_due
from collector.maintenance import FAR_FUTURE_MS, record_window, stamp
from collector.remote_access.records import sessions as remote_sessions
from collector.reporting import parse_as_of, reports, with_checkpoint
from collector.scoping import Viewer, sees_vendor
from collector.store.base import DataRejected, Store
from collector.ticketing.lifecycle import Lifecycle, TicketView, get_ticket, list_tickets
from collector.ticketing.readback import vendor_view
from collector.tokens import FailedAuthAudit, FailedTokenLimit, Scope, TokenRefused, authenticate
from linewarden.book import ContractBook
from linewarden.config.collector import KIB, MIB
from linewarden.domain import Criticality, Severity
from linewarden.errors import (
    BackdateForbidden,
    ConfigError,
    MaintenanceRefused,
    StorageFull,
    StoreUnavailable,
    TicketNotFound,
    TicketStateError,
)
from linewarden.files import write_private
from linewarden.limits import ID_PATTERN
from linewarden.sla.report import ContractReport
from linewarden.wire import MAX_MS, MAX_SHORT_TEXT, MAX_TEXT, MAX_WINDOWS, MaintenanceWindowWire

# A time in a request: milliseconds since the Unix epoch, up to the end of year 9999 (as on the wire).
TimeMs = Annotated[int, Field(ge=0, le=MAX_MS)]
AssetId = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]
MAX_NOTE = 4 * MAX_TEXT

access = logging.getLogger("collector.api.access")
log = logging.getLogger(__name__)
STORE_RETRY_AFTER_S = 5
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
    note: str = Field(default="", max_length=MAX_NOTE)


class PauseBody(BaseModel):
    reason: str = Field(min_length=1, max_length=MAX_TEXT)


class RcaDocument(BaseModel):
    name: str = Field(min_length=1, max_length=MAX_SHORT_TEXT)
    content_base64: str


class RcaBody(BaseModel):
    link: str | None = Field(default=None, pattern=r"^https?://.+", max_length=2000)
    document: RcaDocument | None = None


class ApprovalBody(BaseModel):
    change_ref: str = Field(min_length=1, max_length=100, description="the change (CAB) record, e.g. CAB-2026-114")
    note: str = Field(default="", max_length=MAX_TEXT)


class WindowBody(BaseModel):
    site: str = Field(pattern=ID_PATTERN, max_length=64)
    kind: str = Field(default="maintenance", pattern=r"^(maintenance|change)$")
    start: TimeMs
    end: TimeMs
    assets: list[AssetId] = Field(default_factory=list, max_length=MAX_WINDOWS)
    services: list[AssetId] = Field(default_factory=list, max_length=MAX_WINDOWS)
    whole_site: bool = False
    lines: list[AssetId] = Field(default_factory=list, max_length=MAX_WINDOWS)
    asset_classes: list[Criticality] = Field(default_factory=list, max_length=4)
    reason: str = Field(default="", max_length=MAX_TEXT)
    announced_at: TimeMs | None = None  # back-dating: admin tokens only, with backdate_reason
    backdate_reason: str = Field(default="", max_length=MAX_TEXT)


class EvidenceBody(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    content_base64: str


class DisputeBody(BaseModel):
    contract: str = Field(min_length=1, max_length=200)
    field: str = Field(min_length=1, max_length=40)
    value: int | str | bool  # ms since the epoch for times, S1-S4, true/false for excluded, text for cause
    reason: str = Field(min_length=1, max_length=2000)
    links: list[str] = Field(default_factory=list, max_length=10)
    evidence: list[EvidenceBody] = Field(default_factory=list, max_length=5)


class SettleBody(BaseModel):
    outcome: str = Field(pattern=r"^(accepted|amended|rejected)$")
    reason: str = Field(min_length=1, max_length=2000)
    value: int | str | bool | None = None  # the settled value, for "amended"


def _dispute_step(call: Callable[[], DisputeRecord]) -> DisputeRecord:
    try:
        return call()
    except DisputeNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except DisputeForbidden as exc:
        raise HTTPException(403, str(exc)) from None
    except DisputeStateError as exc:
        raise HTTPException(409, str(exc)) from None
    except DisputeRefused as exc:
        raise HTTPException(422, str(exc)) from None


def needed_scope(method: str, path: str) -> Scope:
    if method in ("GET", "HEAD"):
        return "read"
    if path.endswith("/disputes") or path.startswith("/disputes/"):
        return "disputes"
    if path.startswith("/tickets/"):
        return "tickets"
    return "maintenance" if path.startswith("/maintenance") else "admin"


def _principal(request: Request) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    store, now = request.app.state.store, request.app.state.clock()
    found = authenticate(store, token.strip(), now) if scheme.lower() == "bearer" else TokenRefused("no token")
    origin = request.client.host if request.client else "unknown"
    if request.app.state.token_limit.locked(origin, now):
        request.app.state.failed_auth.record(store, token.strip(), origin, now, "address locked out")
        raise HTTPException(429, "too many failed tokens from this address: try again later")
    if isinstance(found, TokenRefused):
        request.app.state.token_limit.failed(origin, now)
        request.app.state.failed_auth.record(store, token.strip(), origin, now, str(found))
        raise HTTPException(401, f"{found}: missing, unknown, revoked or expired tokens are refused",
                            headers={"WWW-Authenticate": "Bearer"})
    scope = needed_scope(request.method, request.url.path)
    caller = Principal(token_id=found.id, role=found.role, vendor=found.vendor, origin=origin)
    request.state.caller = caller
    if not found.allows(scope):
        request.app.state.failed_auth.record(store, token.strip(), origin, now, f"token lacks scope {scope}")
        raise HTTPException(403, f"this token's scopes ({', '.join(found.scopes)}) do not include {scope}")
    return caller


Caller = Annotated[Principal, Depends(_principal)]


def _audit_call(store: Store, caller: Principal, method: str, path: str, status: int, now: int) -> None:
    with store.transaction() as tx:
        append_entry(tx.sql, caller.actor, caller.origin, "api.call", f"token/{caller.token_id}",
                     {"token_id": caller.token_id, "method": method, "path": path, "status": status}, now)


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
    audit_checkpoint: Callable[[], Checkpoint | None] | None = None,
    max_body_bytes: int = MIB,
    max_upload_bytes: int = 20 * MIB,
) -> FastAPI:
    """`on_maintenance(site)` is called (from a worker thread) after a window of `site` is recorded; `book`
    holds the contracts the reports are of (none: no reports); `audit_checkpoint` gives the audit log's
    latest signed checkpoint, attached to every report.

    A request body may hold `max_body_bytes`; one posting an RCA document or a dispute with evidence files,
    `max_upload_bytes` of documents (base64, so 4/3 of it) and 64 KiB more."""
    app = FastAPI(title="linewarden collector API", version="1")
    app.state.store = store
    app.state.clock = clock
    app.state.failed_auth = FailedAuthAudit()
    app.state.token_limit = FailedTokenLimit()
    upload_body_bytes = max_upload_bytes * 4 // 3 + 64 * KIB
    app.add_middleware(
        BodyLimit,
        limit_for=lambda path: upload_body_bytes if path.endswith(("/rca", "/disputes")) else max_body_bytes,
    )

    @app.middleware("http")  # outside BodyLimit (added later), so a body cut off still answers 413
    async def attribute(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        if request.url.scheme == "https":  # the console's pages too: it is mounted on this app
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        caller: Principal | None = getattr(request.state, "caller", None)
        if caller is not None:
            access.info("token=%s actor=%s origin=%s %s %s %d", caller.token_id, caller.actor, caller.origin,
                        request.method, request.url.path, response.status_code)
            if request.method not in ("GET", "HEAD"):
                await run_in_threadpool(_audit_call, store, caller, request.method, request.url.path,
                                        response.status_code, clock())
        return response

    @app.exception_handler(StoreUnavailable)
    @app.exception_handler(StorageFull)
    async def store_away(request: Request, exc: Exception) -> Response:
        """The database cannot answer (server away, disk full): a retryable 503, never a 500 with a traceback."""
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": "the collector's store is unavailable; retry later"}, status_code=503,
                            headers={"Retry-After": str(STORE_RETRY_AFTER_S)})

    @app.exception_handler(DataRejected)
    async def data_rejected(request: Request, exc: Exception) -> Response:
        """A value of the request the database cannot hold (PostgreSQL: a NUL in text): the request is bad."""
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": f"a value of this request cannot be stored or looked up: {exc}"},
                            status_code=422)

    contracts = book if book is not None else ContractBook({}, {})
    evidence_dir = rca_dir.parent / "evidence"

    def checkpoint() -> Checkpoint | None:
        """The audit log's latest signed checkpoint, for every report and export."""
        return audit_checkpoint() if audit_checkpoint is not None else None

    def visible_reports(
        caller: Principal, period: str, contract: str | None, as_of: str | None
    ) -> list[ContractReport]:
        """The reports `GET /reports/{period}` gives this caller, for the exports."""
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
            if caller.role == "vendor" and found.contract.vendor != caller.vendor:
                raise HTTPException(403, "this contract belongs to another vendor")
        try:
            done = reports(store, contracts, period, contract, as_of_ms=as_of_ms, now_ms=clock())
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return [r for r in done if caller.role != "vendor" or r.vendor == caller.vendor]

    # Registered before GET /reports/{period}, which would take "2026-09.pdf" for a period.
    @app.get("/reports/{period}.pdf", response_class=Response)
    def review_pdf(caller: Caller, period: str, contract: str | None = None, as_of: str | None = None) -> Response:
        """The monthly vendor review of one contract as a PDF (`contract` needed when more than one is visible)."""
        shown = visible_reports(caller, period, contract, as_of)
        if contract is None and len(shown) != 1:
            raise HTTPException(422, "give contract: " + ", ".join(r.contract_id for r in shown))
        chosen = contract or shown[0].contract_id
        as_of_ms = None if as_of is None else shown[0].as_of_ms
        try:
            pdf = monthly_review_pdf(store, contracts, period, chosen, as_of_ms, clock(), checkpoint=checkpoint())
        except (ValueError, ConfigError) as exc:
            raise HTTPException(422, str(exc)) from None
        name = f"review-{chosen}-{period}.pdf"
        return Response(pdf, media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip

    @app.get("/reports/{period}.zip", response_class=Response)
    def report_zip(caller: Caller, period: str, contract: str | None = None, as_of: str | None = None) -> Response:
        """Every report table as its own CSV (<table>.csv), in one zip."""
        data = tables_zip(csv_tables(visible_reports(caller, period, contract, as_of), checkpoint()))
        return Response(data, media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="report-{period}.zip"'})  # fmt: skip

    @app.get("/reports/{period}/{table}.csv", response_class=Response)
    def report_csv(
        caller: Caller, period: str, table: str, contract: str | None = None, as_of: str | None = None
    ) -> Response:
        """One report table (period, uptime, incidents, exclusions, credits, scorecard, disputes) as one CSV."""
        if table not in TABLES:
            raise HTTPException(404, f"no table {table!r}: one of {', '.join(TABLES)}")
        data = csv_tables(visible_reports(caller, period, contract, as_of), checkpoint())[table]
        return Response(data, media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{table}-{period}.csv"'})  # fmt: skip

    @app.post("/incidents/{incident_id}/disputes", status_code=201)
    def dispute(caller: Caller, incident_id: str, body: DisputeBody) -> dict[str, Any]:
        """A vendor disputes one field of an incident under its own contract: a time (ms since the epoch:
        notified_at, acknowledged_at, restored_at, workaround_accepted_at, resolution_claimed_at,
        rca_received_at), its classification (severity S1-S4, excluded true/false) or its cause (text), with
        a reason, links and evidence files (base64; at most 5, 5 MiB each)."""
        if caller.role != "vendor" or caller.vendor is None:
            raise HTTPException(403, "only a vendor token may open a dispute")
        files = []
        for e in body.evidence:
            try:
                files.append(EvidenceFile(e.name, base64.b64decode(e.content_base64, validate=True)))
            except (binascii.Error, ValueError):
                raise HTTPException(422, f"evidence {e.name!r}: content_base64 is not base64") from None
        vendor = caller.vendor
        found = _dispute_step(lambda: open_dispute(
            store, contracts, evidence_dir, body.contract, incident_id, vendor, body.field, body.value, body.reason,
            body.links, files, caller.actor, caller.origin, clock(),
        ))  # fmt: skip
        return found.as_dict()

    @app.get("/disputes/{dispute_id}/evidence/{sha256}", response_class=Response)
    def evidence(caller: Caller, dispute_id: str, sha256: str) -> Response:
        """One evidence file of a dispute, as uploaded (plant IT, or the vendor that disputed)."""
        found = get_dispute(store, dispute_id)
        if found is None:
            raise HTTPException(404, f"no dispute {dispute_id!r}")
        if caller.role == "vendor" and found.vendor != caller.vendor:
            raise HTTPException(403, "this dispute belongs to another vendor")
        path = evidence_path(evidence_dir, found, sha256)
        if path is None:
            raise HTTPException(404, "no such evidence file")
        name = next(e.name for e in found.evidence if e.sha256 == sha256)
        return Response(path.read_bytes(), media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip

    @app.post("/disputes/{dispute_id}/settle")
    def settle(caller: Caller, dispute_id: str, body: SettleBody) -> dict[str, Any]:
        """Plant IT accepts (the vendor's value holds), amends (`value` holds) or rejects a dispute."""
        _require(caller, "plant")
        found = _dispute_step(lambda: settle_dispute(
            store, dispute_id, body.outcome, body.reason, body.value, caller.actor, caller.origin, clock()
        ))  # fmt: skip
        return found.as_dict()

    @app.get("/disputes")
    def disputes(
        caller: Caller, state: str | None = None, contract: str | None = None, incident: str | None = None
    ) -> list[dict[str, Any]]:
        """Disputes the caller may see (a vendor its own), oldest first; `state` open or settled."""
        if state not in (None, "open", "settled"):
            raise HTTPException(422, "state: open or settled")
        vendor = caller.vendor if caller.role == "vendor" else None
        return [d.as_dict() for d in list_disputes(store, vendor, contract, incident, state)]

    @app.get("/disputes/{dispute_id}")
    def dispute_one(caller: Caller, dispute_id: str) -> dict[str, Any]:
        found = get_dispute(store, dispute_id)
        if found is None:
            raise HTTPException(404, f"no dispute {dispute_id!r}")
        if caller.role == "vendor" and found.vendor != caller.vendor:
            raise HTTPException(403, "this dispute belongs to another vendor")
        return found.as_dict()

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
        latest = checkpoint()
        return [with_checkpoint(r, latest) for r in done if sees_vendor(caller.viewer, r.vendor)]

    @app.get("/contracts/renewals")
    def renewals(caller: Caller, days: Annotated[int, Query(ge=0, le=3650)] = 90) -> list[dict[str, Any]]:
        """Renewals and expiries due within `days` days, soonest first, each with the vendor's scorecard per
        month of the current term (plant and admin tokens)."""
        _require(caller, "plant")
        return [r.as_dict() for r in renewals_due(store, contracts, clock(), days)]

    @app.get("/contracts/{contract_id}")
    def contract_life(caller: Caller, contract_id: str) -> dict[str, Any]:
        """A contract's term, next decision, termination rights, escrow checklist and e-signature evidence
        (signers, times, addresses); a vendor sees its own contracts only."""
        found = contracts.contracts.get(contract_id)
        if found is None:
            raise HTTPException(404, f"no contract {contract_id!r}")
        if not sees_vendor(caller.viewer, found.contract.vendor):
            raise HTTPException(403, "this contract belongs to another vendor")
        return {**life(found, clock()), "document_sha256": found.contract.document_sha256,
                "signatures": [e.as_dict() for e in evidence_of(store, contract_id)]}

    @app.get("/tickets")
    def tickets(request: Request, caller: Caller) -> list[dict[str, Any]]:
        """Tickets the caller may see: a vendor's own, or all for plant and admin."""
        vendor = caller.vendor if caller.role == "vendor" else None
        return [t.as_dict() for t in list_tickets(store, vendor)]

    @app.get("/tickets/{contract_id}/{incident_id}")
    def ticket(request: Request, caller: Caller, contract_id: str, incident_id: str) -> dict[str, Any]:
        """The ticket, what the vendor's own tool said at the last read-back, and its escalation notices."""
        found = _ticket(request, caller, contract_id, incident_id).as_dict()
        with store.reader() as sql:
            found["vendor_readback"] = vendor_view(sql, incident_id, contract_id)
            found["escalations"] = notifications(sql, contract_id, incident_id)
        return found

    @app.post("/tickets/{contract_id}/{incident_id}/escalations/{notification}/acknowledge")
    def acknowledge_escalation(
        request: Request, caller: Caller, contract_id: str, incident_id: str,
        notification: Annotated[int, FastApiPath(ge=1, le=2**62)],
    ) -> dict[str, Any]:
        """The person an escalation notice reached acknowledges it."""
        _ticket(request, caller, contract_id, incident_id, "vendor", "plant")
        try:
            return acknowledge_notice(store, contract_id, incident_id, notification, caller.actor, caller.origin,
                                      clock())
        except TicketNotFound as exc:
            raise HTTPException(404, str(exc)) from None

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
            if len(data) > max_upload_bytes:
                raise HTTPException(TOO_LARGE, f"document of {len(data)} bytes is over the limit of {max_upload_bytes}")
            digest = hashlib.sha256(data).hexdigest()
            write_private(rca_dir / digest, data)
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
    def windows(
        caller: Caller,
        start: Annotated[int, Query(ge=0, le=MAX_MS)] = 0,
        end: Annotated[int, Query(ge=0, le=MAX_MS)] = FAR_FUTURE_MS,
    ) -> list[dict[str, Any]]:
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
        except MaintenanceRefused as exc:
            raise HTTPException(422, str(exc)) from None
        if on_maintenance is not None:
            on_maintenance(body.site)
        return {"site": body.site, **msgspec.to_builtins(wire), "unmatched": unmatched}

    @app.post("/maintenance-windows/{window_id}/approval", status_code=201)
    def approve_window(caller: Caller, window_id: str, body: ApprovalBody) -> dict[str, Any]:
        """Plant IT approves a change window with its change (CAB) reference: version changes inside it are
        approved changes. 404 for no such window, 409 for one not a change window or approved already."""
        _require(caller, "plant")
        try:
            found = approve(store, window_id, body.change_ref, body.note, caller.actor, caller.origin, clock())
        except ApprovalRefused as exc:
            raise HTTPException(404 if str(exc).startswith("no window") else 409, str(exc)) from None
        return dict(found.__dict__)

    @app.delete("/maintenance-windows/{window_id}/approval")
    def revoke_approval(caller: Caller, window_id: str) -> dict[str, Any]:
        _require(caller, "plant")
        if not revoke(store, window_id, caller.actor, caller.origin, clock()):
            raise HTTPException(404, f"window {window_id} has no live approval")
        return dict(approvals(store)[window_id].__dict__)

    @app.get("/change-approvals")
    def list_approvals(caller: Caller) -> list[dict[str, Any]]:
        _require(caller, "plant")
        return [dict(a.__dict__) for a in approvals(store).values()]

    @app.get("/remote-sessions")
    def list_sessions(
        caller: Caller,
        start: Annotated[int, Query(ge=0, le=MAX_MS)] = 0,
        end: Annotated[int, Query(ge=0, le=MAX_MS)] = FAR_FUTURE_MS,
    ) -> list[dict[str, Any]]:
        """The remote sessions as received (the report judges them against tickets and approved windows)."""
        _require(caller, "plant")
        return [dict(s.__dict__) for s in remote_sessions(store, start, end)]

    return app
