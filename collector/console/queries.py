"""What the console's pages read from the store, beyond the SLA engine's period view."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from collector import conduct
from collector.store.base import Store
from collector.store.rows import ChangeRow, GapRow, StateChangeRow
from linewarden.domain import State

# Worst first: an asset watched by several targets shows its worst target's state.
_RANK = {State.DOWN.value: 0, State.DEGRADED.value: 1, State.UNKNOWN.value: 2, State.UP.value: 3}


@dataclass(frozen=True)
class AssetNow:
    site: str
    agent: str
    asset: str
    criticality: str
    state: str
    reason: str
    since: int | None
    targets: tuple[str, ...]


def current_assets(store: Store) -> list[AssetNow]:
    """Every asset known (from agents' births, or only from imported state changes) with its worst target's
    latest state (UNKNOWN before any change)."""
    with store.reader() as sql:
        targets = sql.query("SELECT site, agent, target, asset, criticality FROM targets")
        latest = sql.query(
            "SELECT s.site, s.agent, s.target, s.asset, s.to_state, s.reason, s.at FROM state_changes s JOIN"
            " (SELECT site, agent, target, MAX(at) AS at FROM state_changes GROUP BY site, agent, target) p"
            " ON s.site = p.site AND s.agent = p.agent AND s.target = p.target AND s.at = p.at"
        )
    last = {(r["site"], r["agent"], r["target"]): r for r in latest}
    known = {(t["site"], t["agent"], t["target"]): (t["asset"], t["criticality"]) for t in targets}
    for key, r in last.items():
        known.setdefault(key, (r["asset"], "not reported"))
    grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    crit: dict[tuple[str, str, str], str] = {}
    for (site, agent, target), (asset, criticality) in known.items():
        key = (site, agent, asset)
        crit[key] = criticality
        change = last.get((site, agent, target))
        grouped.setdefault(key, []).append(
            {"target": target, "state": change["to_state"] if change else State.UNKNOWN.value,
             "reason": change["reason"] if change else "no state reported yet", "at": change["at"] if change else None}
        )
    out = []
    for key in sorted(grouped):
        parts = grouped[key]
        worst = min(parts, key=lambda p: (_RANK.get(p["state"], 2), -(p["at"] or 0)))
        out.append(AssetNow(key[0], key[1], key[2], crit[key], worst["state"], worst["reason"], worst["at"],
                            tuple(sorted(p["target"] for p in parts))))
    return out


def asset_changes(store: Store, asset: str, start: int, end: int) -> list[StateChangeRow]:
    """The asset's state changes in [start, end), each target's last one before `start` first."""
    cols = "site, agent, target, asset, from_state, to_state, reason, at"
    with store.reader() as sql:
        before = sql.query(
            f"SELECT {cols} FROM state_changes s WHERE asset = ? AND at = (SELECT MAX(at) FROM state_changes p"
            " WHERE p.site = s.site AND p.agent = s.agent AND p.target = s.target AND p.at < ?)",
            (asset, start),
        )
        inside = sql.query(f"SELECT {cols} FROM state_changes WHERE asset = ? AND at >= ? AND at < ? ORDER BY at",
                           (asset, start, end))
    return [StateChangeRow(**r) for r in before + inside]


def asset_versions(store: Store, asset: str, limit: int = 100) -> list[ChangeRow]:
    with store.reader() as sql:
        rows = sql.query(
            "SELECT site, agent, target, asset, what, old_value, new_value, at FROM changes WHERE asset = ?"
            " ORDER BY at DESC LIMIT ?", (asset, limit),
        )
    return [ChangeRow(**r) for r in rows]


def latest_probe_figures(store: Store, site: str, targets: set[tuple[str, str]], since: int) -> dict[
        tuple[str, str], dict[str, Any]]:
    """The latest minute of probe figures (the agents' metrics events) of each (agent, target) since `since`."""
    with store.reader() as sql:
        rows = sql.query("SELECT agent, ts, body FROM events WHERE ts >= ? AND site = ? AND type = 'metrics'",
                         (since, site))
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        body = json.loads(r["body"])
        key = (r["agent"], str(body.get("target")))
        if key in targets and (key not in out or body["minute"] > out[key]["minute"]):
            out[key] = body
    return out


def agent_gaps(store: Store, site: str, agent: str, start: int, end: int) -> list[GapRow]:
    return [g for g in store.gaps(start, end) if g.site == site and g.agent == agent]


def open_incident_ids(store: Store) -> list[str]:
    with store.reader() as sql:
        return [r["id"] for r in sql.query("SELECT id FROM incidents WHERE resolved_at IS NULL ORDER BY opened_at")]


def tickets_of(store: Store, incident: str) -> list[dict[str, Any]]:
    with store.reader() as sql:
        return sql.query("SELECT * FROM tickets WHERE incident_id = ? ORDER BY contract_id", (incident,))


def timers_of(store: Store, incident: str) -> list[dict[str, Any]]:
    with store.reader() as sql:
        rows = sql.query("SELECT * FROM ticket_timers WHERE incident_id = ? ORDER BY due_at, id", (incident,))
    return [{**r, "details": json.loads(r["details"])} for r in rows]


def audit_about(store: Store, prefix: str, limit: int = 200) -> list[dict[str, Any]]:
    """Audit entries whose object starts with `prefix` (e.g. a ticket), oldest first."""
    with store.reader() as sql:
        return sql.query(
            "SELECT id, at_ms, actor, origin, action, object FROM audit_log WHERE object LIKE ? ORDER BY id LIMIT ?",
            (prefix.replace("%", "") + "%", limit),
        )


def audit_entries(store: Store, actor: str, action: str, obj: str, limit: int) -> list[dict[str, Any]]:
    """The newest entries matching every filter given (substring, case as stored)."""
    clauses, params = [], []
    for column, value in (("actor", actor), ("action", action), ("object", obj)):
        if value:
            clauses.append(f"{column} LIKE ?")
            params.append("%" + value.replace("%", "") + "%")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    with store.reader() as sql:
        return sql.query(
            f"SELECT id, at_ms, actor, origin, action, object, details, hash FROM audit_log{where}"
            " ORDER BY id DESC LIMIT ?", (*params, limit),
        )


def live_version(store: Store) -> tuple[Any, ...]:
    """Changes when anything a page shows changes: state changes (late ones too), incidents, windows, tickets,
    gaps, disputes; the last item is the agents' latest contact (heartbeats), which alone changes no figure."""
    with store.reader() as sql:
        row = sql.query(
            "SELECT (SELECT MAX(at) FROM state_changes) AS s, (SELECT COUNT(*) FROM incidents) AS i,"
            " (SELECT COUNT(*) FROM incidents WHERE resolved_at IS NULL) AS o,"
            " (SELECT COUNT(*) FROM maintenance_windows) AS m,"
            " (SELECT COUNT(*) FROM maintenance_windows WHERE cancelled_at IS NOT NULL) AS mc,"
            " (SELECT COUNT(*) FROM ticket_records) AS t, (SELECT COUNT(*) FROM state_changes) AS sc,"
            " (SELECT COUNT(*) FROM gaps) AS g, (SELECT COUNT(*) FROM disputes) AS d,"
            " (SELECT COUNT(*) FROM disputes WHERE outcome IS NOT NULL) AS ds,"
            " (SELECT MAX(last_seen) FROM agents) AS a"
        )[0]
    *figures, last_seen = row.values()
    return (*figures, *conduct.fingerprint(store), last_seen)


def period_fingerprint(store: Store, start: int, end: int) -> tuple[Any, ...]:
    """Changes when anything a report of [start, end) reads changes: rows added, gaps closed or moved,
    windows cancelled, incidents resolved, disputes opened or settled (late data of a past month included)."""
    with store.reader() as sql:
        row = sql.query(
            "SELECT (SELECT COUNT(*) FROM state_changes WHERE at >= ? AND at < ?) AS s,"
            " (SELECT COUNT(*) FROM incident_updates WHERE at >= ? AND at < ?) AS u,"
            " (SELECT COUNT(*) FROM ticket_records WHERE at >= ? AND at < ?) AS t,"
            " (SELECT COUNT(*) FROM incidents WHERE opened_at >= ? AND opened_at < ?) AS i,"
            " (SELECT COUNT(*) FROM incidents WHERE resolved_at >= ? AND resolved_at < ?) AS r,"
            " (SELECT COUNT(*) FROM changes WHERE at >= ? AND at < ?) AS c,"
            " (SELECT COUNT(*) FROM gaps WHERE start_at < ? AND (end_at IS NULL OR end_at > ?)) AS g,"
            " (SELECT SUM(COALESCE(end_at, 0) - start_at) FROM gaps WHERE start_at < ?"
            " AND (end_at IS NULL OR end_at > ?)) AS gl,"
            " (SELECT COUNT(*) FROM maintenance_windows WHERE start_at < ? AND end_at > ?) AS m,"
            " (SELECT COUNT(*) FROM maintenance_windows WHERE start_at < ? AND end_at > ?"
            " AND cancelled_at IS NOT NULL) AS mc,"
            # a dispute may move any month's figures (a settled restoration, severity or exclusion)
            " (SELECT COUNT(*) FROM disputes) AS d, (SELECT COUNT(*) FROM disputes WHERE outcome IS NOT NULL) AS ds",
            (start, end) * 6 + (end, start) * 4,
        )[0]
        # a birth may move a target to another asset or class, which no count shows
        registry = hash(tuple(sql.tuples("SELECT site, agent, target, asset, criticality FROM targets"
                                         " ORDER BY site, agent, target")))
    return (*row.values(), registry, *conduct.fingerprint(store))
