"""The "changes" component: versions agents observed on assets, and plant IT's approvals of change windows
(a change reference from the change advisory board). What the patch policy reads (linewarden/sla/patch_policy.py).

An approval names a recorded window of kind "change"; the window's scope (assets, services, lines, classes,
whole site) decides which assets it approves changes on. One approval per window; revoking it is an audit
entry and makes the window unapproved from then on (changes judged before keep their verdict only in reports
already sent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from collector.audit import append_entry
from collector.maintenance import FAR_FUTURE_MS, period_assets, selected_assets
from collector.store.base import Sql, Store
from collector.store.migrations import Migration
from collector.store.rows import MaintenanceWindowRow, PeriodData
from linewarden.book import ContractBook
from linewarden.errors import LinewardenError
from linewarden.sla.patch_policy import ApprovedWindow, VersionSeen
from linewarden.wire import VersionObservedEvent, clip

_V1 = """
CREATE TABLE version_observations (
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    epoch TEXT NOT NULL,
    seq BIGINT NOT NULL,
    target TEXT NOT NULL,
    asset TEXT NOT NULL,
    what TEXT NOT NULL,
    version TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (site, agent, epoch, seq)
);
CREATE INDEX version_observations_asset ON version_observations (asset, what, at);
CREATE TABLE change_approvals (
    window_id TEXT PRIMARY KEY,
    change_ref TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    approved_at BIGINT NOT NULL,
    note TEXT NOT NULL,
    revoked_by TEXT,
    revoked_at BIGINT
)
"""

MIGRATIONS: list[Migration] = [Migration("changes", 1, _V1)]

MAX_REF = 100


class ApprovalRefused(LinewardenError):
    """An approval that cannot be recorded: no such window, not a change window, approved already."""


@dataclass(frozen=True)
class Approval:
    window_id: str
    change_ref: str
    approved_by: str
    approved_at: int
    note: str
    revoked_by: str | None
    revoked_at: int | None


def record_observation(sql: Sql, site: str, agent: str, epoch: str, asset: str, event: VersionObservedEvent) -> None:
    """The derived row of one newly stored `version_observed` event; `asset` is the registry's."""
    b = event.body
    sql.execute(
        "INSERT INTO version_observations (site, agent, epoch, seq, target, asset, what, version, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, agent, epoch, seq) DO NOTHING",
        (site, agent, epoch, event.seq, b.target, asset, b.what, b.version, b.at),
    )


def observations(store: Store, assets: Sequence[str], until_ms: int) -> list[VersionSeen]:
    """Every observation of these assets up to `until_ms` (a run may have begun long before the period)."""
    if not assets:
        return []
    marks = ", ".join("?" for _ in assets)
    with store.reader() as sql:
        rows = sql.query(
            f"SELECT asset, what, version, at FROM version_observations WHERE asset IN ({marks}) AND at <= ?",
            (*assets, until_ms),
        )
    return [VersionSeen(str(r["asset"]), str(r["what"]), str(r["version"]), int(r["at"])) for r in rows]


def latest_versions(store: Store, asset: str) -> list[VersionSeen]:
    """The latest observation of each `what` of one asset."""
    with store.reader() as sql:
        rows = sql.query(
            "SELECT o.asset, o.what, o.version, o.at FROM version_observations o JOIN (SELECT what, MAX(at) AS at"
            " FROM version_observations WHERE asset = ? GROUP BY what) m ON o.what = m.what AND o.at = m.at"
            " WHERE o.asset = ? ORDER BY o.what",
            (asset, asset),
        )
    return [VersionSeen(str(r["asset"]), str(r["what"]), str(r["version"]), int(r["at"])) for r in rows]


def approvals(store: Store) -> dict[str, Approval]:
    with store.reader() as sql:
        rows = sql.query("SELECT * FROM change_approvals")
    return {str(r["window_id"]): Approval(**r) for r in rows}


def approve(
    store: Store, window_id: str, change_ref: str, note: str, actor: str, origin: str, now_ms: int
) -> Approval:
    """Record plant IT's approval of a change window with its change reference. Raises ApprovalRefused."""
    ref = change_ref.strip()
    if not ref or len(ref) > MAX_REF or any(not c.isprintable() for c in ref):
        raise ApprovalRefused(f"a change reference is 1 to {MAX_REF} printable characters (e.g. CAB-2026-114)")
    found = [w for w in all_windows(store) if w.id == window_id]
    with store.transaction() as tx:
        if not found:
            raise ApprovalRefused(f"no window {window_id}")
        window = found[0]
        if window.kind != "change":
            raise ApprovalRefused(f"window {window_id} is a {window.kind} window: only change windows are approved")
        if window.cancelled_at is not None:
            raise ApprovalRefused(f"window {window_id} is cancelled")
        if tx.sql.query("SELECT 1 FROM change_approvals WHERE window_id = ?", (window_id,)):
            raise ApprovalRefused(f"window {window_id} is approved already")
        approval = Approval(window_id, ref, actor, now_ms, clip(note.strip(), 1000), None, None)
        tx.sql.execute(
            "INSERT INTO change_approvals (window_id, change_ref, approved_by, approved_at, note)"
            " VALUES (?, ?, ?, ?, ?)",
            (window_id, ref, actor, now_ms, approval.note),
        )
        append_entry(tx.sql, actor, origin, "change.approved", f"window/{window_id}",
                     {"change_ref": ref, "note": approval.note, "site": window.site}, now_ms)  # fmt: skip
    return approval


def revoke(store: Store, window_id: str, actor: str, origin: str, now_ms: int) -> bool:
    """Revoke a live approval; False when there is none."""
    with store.transaction() as tx:
        changed = tx.sql.execute(
            "UPDATE change_approvals SET revoked_by = ?, revoked_at = ? WHERE window_id = ? AND revoked_at IS NULL",
            (actor, now_ms, window_id),
        )
        if changed:
            append_entry(tx.sql, actor, origin, "change.revoked", f"window/{window_id}", {}, now_ms)
    return bool(changed)


def approved_windows(
    windows: Sequence[MaintenanceWindowRow], found: dict[str, Approval], data: PeriodData, book: ContractBook | None
) -> list[ApprovedWindow]:
    """The approved change windows, each with the assets it covers (services resolved by the contracts)."""
    known = period_assets(data)
    components = {s.id: s.components for c in (book.contracts.values() if book else []) for s in c.services}
    out = []
    for w in windows:
        a = found.get(w.id)
        if a is None or w.kind != "change":
            continue
        assets = set(selected_assets(w, w.site, known)) | {x for s in w.services for x in components.get(s, [])}
        # A revoked approval stops approving from its revocation: the window ends there.
        end = w.end_at if a.revoked_at is None else min(w.end_at, a.revoked_at)
        out.append(ApprovedWindow(w.id, a.change_ref, w.start_at, end, frozenset(assets), a.approved_at,
                                  a.approved_by, w.cancelled_at is not None))  # fmt: skip
    return out


def all_windows(store: Store) -> list[MaintenanceWindowRow]:
    return store.maintenance_windows(0, FAR_FUTURE_MS)
