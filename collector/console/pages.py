"""What each page shows: the context its template renders, read from the store and computed by the same
functions the reports use. Every function takes the viewing user and shows only what the user may see."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from markupsafe import Markup

from collector import certificates, liveness
from collector.audit import AuditLog
from collector.console import queries, svg
from collector.console.clocks import ContractClocks, contracts_of, incident_clocks
from collector.console.errors import ConsoleError, NotAllowed
from collector.console.sessions import Session
from collector.console.users import User
from collector.console.windows import covered_assets, notices, window_visible
from collector.disputes import list_disputes
from collector.escalation.records import notifications
from collector.esign import evidence_of
from collector.exports import TABLES
from collector.lifecycle_view import life, renewals_due
from collector.reporting import LOOKBACK_MS, reports
from collector.scoping import sees_asset, sees_site, sees_vendor, vendor_assets, visible_contracts
from collector.store.rows import IncidentRow, MaintenanceWindowRow
from collector.ticketing.readback import vendor_view
from linewarden.config.contract import ContractConfig
from linewarden.errors import LinewardenError, WireError
from linewarden.sla.disputes import FIELDS, OUTCOMES, TIMING_FIELDS
from linewarden.sla.periods import month_containing, parse_month
from linewarden.sla.report import ContractReport
from linewarden.wire import MaintenanceWindowWire, build

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from collector.console.app import Deps

DAY_MS = 86_400_000
CURRENT_REUSE_MS = 15_000
PROBE_FIGURES_MS = 15 * 60_000
"""The asset page's probe figures: each target's latest minute reported within this long."""
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
STATE_CSS = {"UP": "up", "DOWN": "down", "DEGRADED": "degraded", "UNKNOWN": "unknown"}
MAINTENANCE_ROLES = ("plant_it", "admin", "vendor")
AUDIT_ROLES = ("plant_it", "procurement", "admin")
SETTLE_ROLES = ("plant_it", "admin")
RENEWAL_ROLES = ("procurement", "admin")


class NotFound(ConsoleError):
    """No such thing, or not one the user may see (the two are not told apart)."""


def duration(ms: int | None) -> str:
    if ms is None:
        return ""
    sign, ms = ("-", -ms) if ms < 0 else ("", ms)
    s = ms // 1000
    d, h, m = s // 86_400, s % 86_400 // 3600, s % 3600 // 60
    if d:
        return f"{sign}{d}d {h}h"
    if h:
        return f"{sign}{h}h {m}m"
    return f"{sign}{m}m {s % 60}s" if m else f"{sign}{s}s"


def common(deps: Deps, user: User, session: Session, page: str) -> dict[str, Any]:
    return {"user": user, "csrf": session.csrf, "page": page, "now": deps.clock(),
            "may_audit": user.role in AUDIT_ROLES, "may_maintain": user.role in MAINTENANCE_ROLES,
            "may_renew": user.role in RENEWAL_ROLES}


def criticality(deps: Deps) -> dict[str, str]:
    return {t.asset: t.criticality for t in deps.store.registry()}


def _tick(deps: Deps) -> Any:
    zone = ZoneInfo(deps.timezone)
    return lambda ms: datetime.fromtimestamp(ms / 1000, zone).strftime("%m-%d %H:%M")


# ------------------------------------------------------------ overview


@dataclass(frozen=True)
class OpenIncident:
    row: IncidentRow
    clocks: tuple[ContractClocks, ...]


def _visible_incident(deps: Deps, user: User, row: IncidentRow) -> tuple[ContractClocks, ...] | None:
    """The incident's clocks under the contracts the user may see; None when the user may not see it."""
    if not sees_site(user.viewer, row.site):
        return None
    concerned = contracts_of(deps.book, row)
    mine = [c for c in concerned if sees_vendor(user.viewer, c.contract.vendor)]
    if user.viewer.is_vendor and not mine:
        return None
    now = deps.clock()
    return tuple(x for x in (incident_clocks(deps.book, row, c, now) for c in mine) if x is not None)


def open_incidents(deps: Deps, user: User) -> list[OpenIncident]:
    now = deps.clock()
    ids = set(queries.open_incident_ids(deps.store))
    out = []
    for row in deps.store.incidents(now, now + 1):
        if row.id not in ids:
            continue
        clocks = _visible_incident(deps, user, row)
        if clocks is not None:
            out.append(OpenIncident(row, clocks))
    return out


def _agent_rows(deps: Deps, user: User) -> list[dict[str, Any]]:
    now = deps.clock()
    gaps = {(g.site, g.agent): g for g in deps.store.open_gaps()}
    recent = deps.store.gaps(now - 30 * DAY_MS, now)
    dead = deps.store.dead_letter_counts()
    out = []
    for a in deps.store.agents():
        if not sees_site(user.viewer, a.site):
            continue
        status = liveness.status(a, gaps.get((a.site, a.agent)), now, deps.missed_heartbeats, deps.watching_since)
        mine = [g for g in recent if g.site == a.site and g.agent == a.agent]
        out.append({
            "agent": a, "status": status.value, "open_gap": gaps.get((a.site, a.agent)),
            "gaps_30d": len(mine), "gap_ms_30d": sum(min(g.end_at or now, now) - max(g.start_at, now - 30 * DAY_MS)
                                                     for g in mine),
            "dead_letters": dead.get((a.site, a.agent), 0), "oldest_age_ms": liveness.oldest_unacked_age_ms(a),
            "certificates": certificates.summary(
                certificates.agent_expiring(deps.store, a.site, a.agent, a.epoch), now
            ),
        })
    return out


def live_filter(deps: Deps, user: User) -> Callable[[queries.AssetNow], bool] | None:
    """What the live stream may tell this user: the assets of the overview it may see (None: all)."""
    viewer = user.viewer
    allowed = vendor_assets(viewer, deps.book, criticality(deps))
    if allowed is None and not viewer.sites:
        return None
    return lambda a: sees_site(viewer, a.site) and (allowed is None or a.asset in allowed)


def overview_live(deps: Deps, user: User) -> dict[str, Any]:
    """The overview's live parts (assets, open incidents, agents): the same for every user of one scope."""
    crit = criticality(deps)
    allowed = vendor_assets(user.viewer, deps.book, crit)
    tree: dict[str, dict[str, list[queries.AssetNow]]] = {}
    for a in queries.current_assets(deps.store):
        if sees_site(user.viewer, a.site) and (allowed is None or a.asset in allowed):
            tree.setdefault(a.site, {}).setdefault(a.agent, []).append(a)
    counts: dict[str, int] = {}
    for lines in tree.values():
        for assets in lines.values():
            for a in assets:
                counts[a.state] = counts.get(a.state, 0) + 1
    return {
        "tree": tree, "counts": counts, "css": STATE_CSS, "incidents": open_incidents(deps, user),
        "show_agents": not user.viewer.is_vendor,
        "agents": _agent_rows(deps, user) if not user.viewer.is_vendor else [],
    }


# ------------------------------------------------------------ asset


def asset(deps: Deps, user: User, session: Session, site: str, asset_id: str, days: int) -> dict[str, Any]:
    crit = criticality(deps)
    now = deps.clock()
    known = [a for a in queries.current_assets(deps.store) if a.site == site and a.asset == asset_id]
    if not known or not sees_asset(user.viewer, deps.book, site, asset_id, crit):
        raise NotFound(f"no asset {asset_id} at {site} that you may see")
    days = max(1, min(days, 92))
    start, end = now - days * DAY_MS, now
    changes = sorted(queries.asset_changes(deps.store, asset_id, start, end), key=lambda c: c.at)
    spans = []
    for n, c in enumerate(changes):
        stop = changes[n + 1].at if n + 1 < len(changes) else end
        spans.append(svg.Span(max(c.at, start), stop, STATE_CSS.get(c.to_state, "unknown"),
                              f"{c.to_state} ({c.target}): {c.reason}"))
    services_of = {s.id: set(s.components) for c in deps.book.contracts.values() for s in c.services}
    windows = [
        w for w in deps.store.maintenance_windows(start, end + 365 * DAY_MS)
        if w.site == site and (asset_id in covered_assets(deps.store, site, w)
                               or any(asset_id in services_of.get(s, ()) for s in w.services))
    ]
    window_rows: list[dict[str, Any]] = []
    for w in windows:
        given = notices(deps.book, (asset_id,), (), w.start_at, w.announced_at, crit)
        timely = all(n.enough for n in given) if given else True
        window_rows.append({"w": w, "timely": timely, "notices": given})
    agents = {a.agent for a in known}
    gaps = [g for g in deps.store.gaps(start, end) if g.site == site and g.agent in agents]
    incidents = [i for i in deps.store.incidents(start, end) if i.asset == asset_id and i.site == site]
    lanes = [
        svg.Lane("state", spans),
        svg.Lane("maintenance", [svg.Span(r["w"].start_at, r["w"].end_at,
                                          "cancelled" if r["w"].cancelled_at else "mw" if r["timely"] else "mw-short",
                                          f"window {r['w'].id}: {r['w'].reason}"
                                          + (" (cancelled)" if r["w"].cancelled_at else "")
                                          + ("" if r["timely"] else " (short notice)")) for r in window_rows]),
        svg.Lane("monitoring gaps", [svg.Span(g.start_at, g.end_at or end, "gap", f"gap: {g.reason}") for g in gaps]),
        svg.Lane("incidents", [svg.Span(i.opened_at or start, i.resolved_at or end, "incident",
                                        f"incident {i.id} {i.severity}: {i.reason}") for i in incidents]),
    ]
    picture = svg.timeline(f"{asset_id}: states over the last {days} days", start, end, lanes, _tick(deps), now)
    targets = {(a.agent, t) for a in known for t in a.targets}
    figures = queries.latest_probe_figures(deps.store, site, targets, now - PROBE_FIGURES_MS)
    probes = [{"agent": agent, "target": target, "m": figures.get((agent, target))}
              for agent, target in sorted(targets)]
    return {
        **common(deps, user, session, "overview"), "site": site, "asset_id": asset_id, "now_rows": known,
        "probes": probes,
        "days": days, "svg": picture, "changes": changes, "windows": window_rows, "gaps": gaps,
        "incidents": incidents, "versions": queries.asset_versions(deps.store, asset_id), "css": STATE_CSS,
        "contracts": [c for c in deps.book.covering(asset_id) if sees_vendor(user.viewer, c.contract.vendor)],
    }


# ------------------------------------------------------------ contracts


def contracts(deps: Deps, user: User, session: Session) -> dict[str, Any]:
    return {**common(deps, user, session, "contracts"), "contracts": visible_contracts(user.viewer, deps.book)}


def _months_back(label: str, n: int) -> list[str]:
    year, month = int(label[:4]), int(label[5:])
    out = []
    for _ in range(n):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return out[::-1]


def _month_report(deps: Deps, contract_id: str, label: str, current: str, now: int) -> ContractReport:
    """A whole month's report is the same at any later time while the data it reads stays the same: kept in
    `deps.reports` under that month's fingerprint (late data changes it). The month under way is reused for
    CURRENT_REUSE_MS while nothing at all changed; the page says the time it is as of."""
    if label == current:
        version = queries.live_version(deps.store)[:-1]
    else:
        period = parse_month(label, deps.book.contracts[contract_id].contract.timezone)
        version = queries.period_fingerprint(deps.store, period.start_ms - LOOKBACK_MS, period.end_ms)
    key = (contract_id, label, version)
    found = deps.reports.get(key)
    if found is not None and (label != current or now - found.as_of_ms < CURRENT_REUSE_MS):
        return found
    if len(deps.reports) > 500:
        deps.reports.clear()
    found = deps.reports[key] = reports(deps.store, deps.book, label, contract_id, now_ms=now)[0]
    return found


def warm_reports(deps: Deps, stop: threading.Event) -> None:
    """Compute the trend months of every contract ahead of the first view (run in a thread at start)."""
    now = deps.clock()
    try:
        for cid in sorted(deps.book.contracts):
            current = month_containing(now, deps.book.contracts[cid].contract.timezone).label
            for label in _months_back(current, 12)[:-1]:
                if stop.is_set():
                    return
                _month_report(deps, cid, label, current, now)
    except Exception:
        log.exception("computing the contracts' trend ahead failed; each contract page computes its own")


def contract(deps: Deps, user: User, session: Session, contract_id: str, period: str) -> dict[str, Any]:
    found = deps.book.contracts.get(contract_id)
    if found is None or not sees_vendor(user.viewer, found.contract.vendor):
        raise NotFound(f"no contract {contract_id} that you may see")
    now = deps.clock()
    current = month_containing(now, found.contract.timezone).label
    period = period or current
    if not _MONTH.match(period) or period > current:
        raise ConsoleError(f"period {period!r}: give a month (YYYY-MM) that has begun")
    try:
        report = _month_report(deps, contract_id, period, current, now)
    except (ValueError, LinewardenError) as exc:
        raise ConsoleError(f"period {period!r}: {exc}") from None
    trend = [(label, report if label == period else _month_report(deps, contract_id, label, current, now))
             for label in _months_back(period, 12)]
    fee = report.fee
    return {
        **common(deps, user, session, "contracts"), "c": found, "r": report, "period": period,
        "months": _months_back(current, 12)[::-1],
        "trend": trend,
        "trend_svg": svg.trend(f"{contract_id}: score per month", [(lbl, r.scorecard.score) for lbl, r in trend]),
        "cap_pct": found.credits.cap_fee_pct, "fee": fee,
        "bands": sorted(found.credits.uptime, key=lambda b: b.below_pct, reverse=True),
        "disputed": frozenset(d.incident_id for d in list_disputes(deps.store, contract_id=contract_id, state="open")),
        "exports": _export_links(contract_id, period),
        "life": life(found, now), "signatures": evidence_of(deps.store, contract_id),
    }


def renewals(deps: Deps, user: User, session: Session, days: int) -> dict[str, Any]:
    if user.role not in RENEWAL_ROLES:
        raise NotAllowed("renewals are for procurement and admins")
    days = max(0, min(days, 3650))
    now = deps.clock()

    def cached(c: ContractConfig, label: str) -> ContractReport:
        current = month_containing(now, c.contract.timezone).label
        return _month_report(deps, c.contract.id, label, current, now)

    due = renewals_due(deps.store, deps.book, now, days, cached)
    return {**common(deps, user, session, "renewals"), "days": days, "renewals": due,
            "svgs": {r.contract.contract.id: svg.trend(f"{r.contract.contract.id}: score per month of the term",
                                                        [(m.period, m.score) for m in r.trend]) for r in due}}


def _export_links(contract_id: str, period: str) -> list[dict[str, str]]:
    """The contract page's downloads for the period shown (paths below the console's root)."""
    root = f"/contracts/{contract_id}/reports/{period}"
    return [{"href": f"{root}.pdf", "label": "Download monthly review (PDF)", "id": "review-pdf"},
            {"href": f"{root}.json", "label": "The report (JSON, as the API's GET /reports)", "id": "report-json"},
            *({"href": f"{root}/{t}.csv", "label": f"Table {t} (CSV)", "id": f"csv-{t}"} for t in TABLES)]


# ------------------------------------------------------------ incident


def may_dispute(user: User, deps: Deps, contracts: set[str]) -> list[str]:
    """The contracts under which this user may dispute an incident: a vendor user's own ones."""
    if user.role != "vendor":
        return []
    return sorted(c for c in contracts if deps.book.contracts[c].contract.vendor == user.vendor)


_STEP_TEXT = {
    "ticket_raised": "ticket raised at the vendor (notified)", "ticket_acknowledged": "acknowledged by the vendor",
    "ticket_paused": "clock paused", "ticket_resumed": "clock resumed", "workaround_accepted": "workaround accepted",
    "resolution_claimed": "resolution claimed by the vendor", "rca_received": "RCA received",
    "ticket_triaged": "triaged by the vendor",
}


def incident(deps: Deps, user: User, session: Session, incident_id: str) -> dict[str, Any]:
    rows = [r for r in deps.store.incidents(0, 2**62) if r.id == incident_id]
    if not rows:
        raise NotFound(f"no incident {incident_id} that you may see")
    row = rows[0]
    clocks = _visible_incident(deps, user, row)
    if clocks is None:
        raise NotFound(f"no incident {incident_id} that you may see")
    now = deps.clock()
    allowed_contracts = {c.contract_id for c in clocks}
    steps: list[dict[str, Any]] = []
    if row.asset is not None and row.opened_at is not None:
        before = queries.asset_changes(deps.store, row.asset, row.opened_at - DAY_MS, row.opened_at + 1)
        failing = [c for c in before if c.to_state != "UP" and c.at <= row.opened_at]
        if failing:
            first = max(failing, key=lambda c: c.at)
            steps.append({"at": first.at, "what": f"first failed probe: {first.target} {first.to_state}",
                          "who": "agent", "detail": first.reason})
    steps.append({"at": row.opened_at, "what": f"incident opened ({row.severity})", "who": "agent",
                  "detail": row.reason or ""})
    for s in row.severity_history:
        steps.append({"at": s.at, "what": f"update: {s.severity} {s.state}", "who": "agent", "detail": s.reason})
    for rec in row.tickets:
        if rec.contract and rec.contract not in allowed_contracts:
            continue
        steps.append({"at": rec.at, "what": _STEP_TEXT.get(rec.kind, rec.kind.replace("_", " ")), "who": rec.actor,
                      "detail": ", ".join(f"{k}: {v}" for k, v in rec.details.items() if isinstance(v, str | int))})
    if row.resolved_at is not None:
        steps.append({"at": row.resolved_at, "what": "restored (measured UP and stable)", "who": "agent",
                      "detail": row.resolve_reason or ""})
    timers = [t for t in queries.timers_of(deps.store, incident_id) if t["contract_id"] in allowed_contracts
              or not user.viewer.is_vendor]
    for tm in timers:
        if tm["fired_at"] is not None:
            contacts = tm["details"].get("notify", tm["details"].get("contacts", []))
            steps.append({"at": tm["fired_at"], "what": f"{tm['kind']} sent ({tm['name']})", "who": "collector",
                          "detail": ", ".join(map(str, contacts))})
    tickets = [t for t in queries.tickets_of(deps.store, incident_id)
               if t["contract_id"] in allowed_contracts or not user.viewer.is_vendor]
    readback: dict[str, dict[str, Any]] = {}
    notices: list[dict[str, Any]] = []
    with deps.store.reader() as sql:
        for tk in tickets:
            readback[tk["contract_id"]] = vendor_view(sql, incident_id, tk["contract_id"])
            notices += [{**n, "contract_id": tk["contract_id"]}
                        for n in notifications(sql, tk["contract_id"], incident_id)]
    for n in notices:
        if n["sent_at"] is not None:
            steps.append({"at": n["sent_at"], "what": f"escalation level {n['level']} notice sent ({n['channel']})",
                          "who": "collector", "detail": n["contact_name"] or n["entry"]})
        if n["acknowledged_at"] is not None:
            steps.append({"at": n["acknowledged_at"], "what": f"escalation level {n['level']} notice acknowledged",
                          "who": n["acknowledged_by"] or "", "detail": n["contact_name"]})
    for tk in tickets:
        if tk.get("closed_at"):
            steps.append({"at": tk["closed_at"], "what": f"ticket closed ({tk['contract_id']})", "who": "collector",
                          "detail": tk["vendor_display"]})
    steps = sorted((s for s in steps if s["at"] is not None), key=lambda s: s["at"])
    pictures: list[tuple[ContractClocks, Markup | None]] = []
    for cc in clocks:
        lanes = [svg.Lane(f"{v.name} clock", [svg.Span(s, e, "counted", f"{v.name}: coverage time counted")
                                              for s, e in v.segments]) for v in cc.clocks]
        if lanes:
            begin = min(v.start_ms for v in cc.clocks)
            last = max((v.stop_ms or now) if v.clock.stopped else now for v in cc.clocks)
            pictures.append((cc, svg.timeline(f"{cc.contract_id}: clocks in {cc.coverage} coverage", begin,
                                              max(last, begin + 1000), lanes, _tick(deps), now)))
        else:
            pictures.append((cc, None))
    disputes = [d for d in list_disputes(deps.store, incident_id=incident_id) if d.contract_id in allowed_contracts]
    audit = []
    for cid in sorted(allowed_contracts):
        audit += queries.audit_about(deps.store, f"ticket/{cid}/{incident_id}")
    for d in disputes:
        audit += queries.audit_about(deps.store, f"dispute/{d.id}")
    return {**common(deps, user, session, "overview"), "row": row, "steps": steps, "clocks": pictures,
            "timers": timers, "tickets": tickets, "readback": readback, "notices": notices,
            "audit": sorted(audit, key=lambda a: a["id"]),
            "disputes": disputes, "disputed": frozenset(d.incident_id for d in disputes if d.outcome is None),
            "dispute_under": may_dispute(user, deps, allowed_contracts), "may_settle": user.role in SETTLE_ROLES,
            "fields": FIELDS, "outcomes": OUTCOMES, "timing": TIMING_FIELDS}


# ------------------------------------------------------------ maintenance


def require_maintenance(user: User) -> None:
    if user.role not in MAINTENANCE_ROLES:
        raise NotAllowed(f"a {user.role} user may look at maintenance windows but not add or cancel them")


def local_ms(deps: Deps, text: str, field: str) -> int:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ConsoleError(f"{field}: not a date and time: {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo(deps.timezone))
    return int(dt.timestamp() * 1000)


def _names(text: str) -> list[str]:
    return sorted({p.strip() for p in text.replace("\n", ",").split(",") if p.strip()})


def parse_window(deps: Deps, data: dict[str, str]) -> MaintenanceWindowWire:
    """The window a form describes (id and announcement filled in when saved)."""
    start = local_ms(deps, data.get("start", ""), "start")
    end = local_ms(deps, data.get("end", ""), "end")
    if end <= start:
        raise ConsoleError("the window must end after it starts")
    if not data.get("site"):
        raise ConsoleError("choose a site")
    try:
        return build(MaintenanceWindowWire, {
            "id": "w-draft", "kind": "change" if data.get("kind") == "change" else "maintenance", "start": start,
            "end": end, "assets": _names(data.get("assets", "")), "services": _names(data.get("services", "")),
            "announced_at": start, "announced_by": "", "reason": data.get("reason", "")[:500],
            "whole_site": data.get("whole_site") == "yes", "lines": _names(data.get("lines", "")),
            "asset_classes": _names(data.get("asset_classes", "")),
        })  # fmt: skip
    except WireError as exc:
        raise ConsoleError(f"the window is not valid: {exc}") from None


def window_for(deps: Deps, user: User, window_id: str) -> MaintenanceWindowRow:
    crit = criticality(deps)
    for w in deps.store.maintenance_windows(0, 2**62):
        visible = sees_site(user.viewer, w.site) and window_visible(user.viewer, deps.book, deps.store, w, crit)
        if w.id == window_id and visible:
            return w
    raise NotFound(f"no window {window_id} that you may change")


def maintenance(
    deps: Deps, user: User, session: Session, preview: tuple[str, MaintenanceWindowWire] | None = None,
    form: dict[str, str] | None = None,
) -> dict[str, Any]:
    now = deps.clock()
    crit = criticality(deps)
    rows = []
    for w in deps.store.maintenance_windows(now - 90 * DAY_MS, 2**62):
        if not sees_site(user.viewer, w.site) or not window_visible(user.viewer, deps.book, deps.store, w, crit):
            continue
        given = notices(deps.book, covered_assets(deps.store, w.site, w), w.services, w.start_at, w.announced_at,
                        crit)
        rows.append({"w": w, "notices": given, "timely": all(n.enough for n in given), "upcoming": w.end_at > now})
    checked = None
    if preview is not None:
        site, draft = preview
        covers = covered_assets(deps.store, site, draft)
        checked = {"site": site, "w": draft, "covers": covers,
                   "notices": notices(deps.book, covers, tuple(draft.services),
                                                                draft.start, now, crit)}
    allowed = vendor_assets(user.viewer, deps.book, crit)
    assets = sorted({(a.site, a.asset) for a in queries.current_assets(deps.store)
                     if sees_site(user.viewer, a.site) and (allowed is None or a.asset in allowed)})
    default_start = datetime.fromtimestamp(now / 1000, ZoneInfo(deps.timezone)) + timedelta(days=4)
    return {
        **common(deps, user, session, "maintenance"),
        "upcoming": [r for r in rows if r["upcoming"]], "past": [r for r in rows if not r["upcoming"]][::-1],
        "checked": checked, "form": form or {}, "assets": assets, "sites": sorted({s for s, _ in assets}),
        "default_start": default_start.strftime("%Y-%m-%dT%H:00"),
        "default_end": (default_start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:00"),
    }


# ------------------------------------------------------------ audit and agents


def audit(deps: Deps, user: User, session: Session, actor: str, action: str, obj: str, limit: int) -> dict[str, Any]:
    if user.role not in AUDIT_ROLES:
        raise NotAllowed("the audit log is for plant IT, procurement and admins")
    log = AuditLog(deps.store)
    broken = log.verify()
    entries = queries.audit_entries(deps.store, actor, action, obj, max(1, min(limit, 1000)))
    return {**common(deps, user, session, "audit"), "entries": entries, "broken": broken, "head": log.head(),
            "filters": {"actor": actor, "action": action, "object": obj, "limit": limit}}


def agents(deps: Deps, user: User, session: Session) -> dict[str, Any]:
    if user.viewer.is_vendor:
        raise NotAllowed("the agents page is for plant IT, procurement and admins")
    return {**common(deps, user, session, "agents"), "agents": _agent_rows(deps, user)}
