"""Routing: which incidents become vendor tickets, under which contract, and which go to plant IT.

`decide` is the pure rule: an incident on an asset in a contract's scope becomes a ticket through that
contract's sink, unless it opened inside an approved maintenance window covering that asset (by name, service,
line, asset class or whole site; announced at least the contract's notice ahead, not cancelled); out-of-scope
assets, site-link incidents and agents going silent go to plant IT. `Router` applies it to what the store
holds: every incident not routed yet (so nothing is lost to a crash between ingest and routing), severity
raised at the edge since, and measured restorations, each in one transaction with its audit entry and
dispatch request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec

from collector.audit import append_entry
from collector.maintenance import SiteAsset, selected_assets, site_assets
from collector.store.base import Row, Sql, Store
from collector.store.rows import GapRow, MaintenanceWindowRow
from collector.ticketing.base import Ticket, ticket_for_incident
from collector.ticketing.dispatch import request_step
from collector.ticketing.lifecycle import Lifecycle
from collector.ticketing.plant_it import PLANT_IT
from linewarden.book import ContractBook
from linewarden.config.contract import ContractConfig
from linewarden.domain import Criticality, Severity, State
from linewarden.wire import IncidentOpenedBody

log = logging.getLogger(__name__)

Decision = Literal["vendor", "plant_it", "maintenance"]


@dataclass(frozen=True)
class Route:
    contract_id: str  # a contract id, or PLANT_IT
    decision: Decision
    reason: str


def _window_covers(w: MaintenanceWindowRow, asset: str, contract: ContractConfig, known: Sequence[SiteAsset]) -> bool:
    if asset in selected_assets(w, w.site, known):
        return True
    services = {s.id: s for s in contract.services}
    return any(sid in services and asset in services[sid].components for sid in w.services)


def approved_window(
    windows: Sequence[MaintenanceWindowRow], site: str, asset: str, at: int, contract: ContractConfig,
    known: Sequence[SiteAsset] = (),
) -> MaintenanceWindowRow | None:
    """`known`: the registry's assets, for windows that select a whole site, lines or asset classes."""
    notice_ms = int(contract.maintenance.notice.total_seconds() * 1000)
    for w in windows:
        if (
            w.site == site
            and w.cancelled_at is None
            and w.start_at <= at < w.end_at
            and w.start_at - w.announced_at >= notice_ms
            and _window_covers(w, asset, contract, known)
        ):
            return w
    return None


def decide(
    kind: str, site: str, asset: str | None, opened_at: int, book: ContractBook,
    windows: Sequence[MaintenanceWindowRow], known: Sequence[SiteAsset] = (),
) -> list[Route]:
    """Where one incident goes: one route per covering contract, or plant IT."""
    if kind != "target" or asset is None:
        return [Route(PLANT_IT, "plant_it", f"{kind} incident: plant IT's, not a vendor's")]
    contracts = book.covering(asset)
    if not contracts:
        return [Route(PLANT_IT, "plant_it", f"asset {asset} is in no contract's scope")]
    routes = []
    for c in contracts:
        window = approved_window(windows, site, asset, opened_at, c, known)
        if window is not None:
            routes.append(Route(c.contract.id, "maintenance", f"inside approved maintenance window {window.id}"))
        else:
            routes.append(Route(c.contract.id, "vendor", f"asset {asset} is in scope"))
    return routes


def _body(r: Row) -> IncidentOpenedBody:
    return IncidentOpenedBody(
        incident=r["id"],
        kind=r["kind"],
        target=r["target"],
        asset=r["asset"],
        criticality=Criticality(r["criticality"]) if r["criticality"] else None,
        severity=Severity(r["severity"] or "S4"),
        state=State(r["state"] or "DOWN"),
        reason=r["reason"] or "",
        cause=r["cause"],
        in_production=None if r["in_production"] is None else bool(r["in_production"]),
        opened_at=int(r["opened_at"]),
        targets=json.loads(r["targets"]),
    )


class Router:
    def __init__(
        self,
        store: Store,
        book: ContractBook,
        lifecycle: Lifecycle,
        clock: Callable[[], int],
        origin: str,
        plant_it_webhook: bool,
    ) -> None:
        self._store = store
        self._book = book
        self._lifecycle = lifecycle
        self._clock = clock
        self._origin = origin
        self._plant_it_webhook = plant_it_webhook

    def route_pending(self) -> list[Route]:
        """Route new incidents, pass on raised severities and measured restorations; return the new routes."""
        with self._store.reader() as sql:
            fresh = sql.query(
                "SELECT * FROM incidents i WHERE i.opened_at IS NOT NULL AND NOT EXISTS"
                " (SELECT 1 FROM ticket_routes r WHERE r.incident_id = i.id) ORDER BY i.opened_at, i.id"
            )
        routed: list[Route] = []
        for row in fresh:
            routed.extend(self._route(row))
        self._raise_severities()
        self._restorations()
        return routed

    def _route(self, row: Row) -> list[Route]:
        body = _body(row)
        now = self._clock()
        windows = self._store.maintenance_windows(body.opened_at, body.opened_at + 1)
        known: list[SiteAsset] = []
        if windows:
            with self._store.reader() as sql:
                known = site_assets(sql, row["site"])
        routes = decide(body.kind, row["site"], body.asset, body.opened_at, self._book, windows, known)
        with self._store.transaction() as tx:
            sql = tx.sql
            for route in routes:
                added = sql.execute(
                    "INSERT INTO ticket_routes (incident_id, contract_id, decision, reason, severity, routed_at)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (incident_id, contract_id) DO NOTHING",
                    (body.incident, route.contract_id, route.decision, route.reason, body.severity.value, now),
                )
                if not added:
                    continue
                details = {"decision": route.decision, "reason": route.reason, "severity": body.severity.value,
                           "asset": body.asset, "site": row["site"]}
                append_entry(sql, "collector", self._origin, "incident.routed",
                             f"incident/{body.incident}/{route.contract_id}", details, now)
                if route.decision == "vendor":
                    self._request_create(sql, self._vendor_ticket(body, self._book.contracts[route.contract_id]), now)
                elif route.decision == "plant_it":
                    log.warning("incident %s goes to plant IT: %s", body.incident, route.reason)
                    if self._plant_it_webhook:
                        self._request_create(sql, ticket_for_incident(body, PLANT_IT, PLANT_IT), now)
        return routes

    def agent_silent(self, gap: GapRow) -> None:
        """An agent stopped reporting: plant IT's to look at (at most once per gap)."""
        key = f"agent-down:{gap.site}:{gap.agent}:{gap.start_at}"
        now = self._clock()
        reason = f"agent {gap.site}/{gap.agent} silent since {gap.start_at}: {gap.reason}"
        with self._store.transaction() as tx:
            added = tx.sql.execute(
                "INSERT INTO ticket_routes (incident_id, contract_id, decision, reason, severity, routed_at)"
                " VALUES (?, ?, 'plant_it', ?, 'S3', ?) ON CONFLICT (incident_id, contract_id) DO NOTHING",
                (key, PLANT_IT, reason, now),
            )
            if not added:
                return
            append_entry(tx.sql, "collector", self._origin, "incident.routed", f"incident/{key}/{PLANT_IT}",
                         {"decision": "plant_it", "reason": reason}, now)
            if self._plant_it_webhook:
                ticket = Ticket(key, PLANT_IT, PLANT_IT, gap.agent, Severity.S3, f"agent {gap.agent} silent",
                                reason, gap.start_at)
                self._request_create(tx.sql, ticket, now)
        log.warning("plant IT: %s", reason)

    def _vendor_ticket(self, body: IncidentOpenedBody, contract: ContractConfig) -> Ticket:
        return ticket_for_incident(body, contract.contract.id, contract.contract.vendor)

    def _request_create(self, sql: Sql, ticket: Ticket, now: int) -> None:
        request_step(sql, "create", "create", ticket, "", "collector", self._origin, now)

    def _raise_severities(self) -> None:
        with self._store.reader() as sql:
            rows = sql.query(
                "SELECT r.incident_id, r.contract_id, MIN(u.severity) AS worst FROM ticket_routes r"
                " JOIN incident_updates u ON u.incident = r.incident_id WHERE r.decision = 'vendor'"
                " GROUP BY r.incident_id, r.contract_id, r.severity HAVING MIN(u.severity) < r.severity"
            )
        now = self._clock()
        for r in rows:
            severity = Severity(r["worst"])
            with self._store.transaction() as tx:
                tx.sql.execute(
                    "UPDATE ticket_routes SET severity = ? WHERE incident_id = ? AND contract_id = ?",
                    (severity.value, r["incident_id"], r["contract_id"]),
                )
                incident = tx.sql.query("SELECT * FROM incidents WHERE id = ?", (r["incident_id"],))
                contract = self._book.contracts.get(r["contract_id"])
                if not incident or contract is None:
                    continue
                body = msgspec.structs.replace(_body(incident[0]), severity=severity)
                raised = self._vendor_ticket(body, contract)
                request_step(tx.sql, "update", f"update:{severity.value}", raised, "", "collector", self._origin, now)
                append_entry(tx.sql, "collector", self._origin, "incident.severity_raised",
                             f"incident/{r['incident_id']}/{r['contract_id']}", {"severity": severity.value}, now)

    def _restorations(self) -> None:
        """Restorations of incidents whose ticket is recorded; a ticket recorded later handles its own
        (Lifecycle.on_recorded), so the order the two arrive in does not matter."""
        with self._store.reader() as sql:
            rows = sql.query(
                "SELECT r.incident_id, r.contract_id FROM ticket_routes r JOIN incidents i"
                " ON i.id = r.incident_id WHERE r.decision = 'vendor' AND r.restored_at IS NULL"
                " AND i.resolved_at IS NOT NULL AND EXISTS (SELECT 1 FROM tickets t"
                " WHERE t.incident_id = r.incident_id AND t.contract_id = r.contract_id)"
            )
        now = self._clock()
        for r in rows:
            with self._store.transaction() as tx:
                self._lifecycle.apply_restoration(tx.sql, r["incident_id"], r["contract_id"], now)
