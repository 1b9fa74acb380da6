"""The console's Changes page: change windows with plant IT's approvals (change references), and this month's
observed conduct per contract: version changes judged by the change policy, vendor remote sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from collector import change_records
from collector.console.errors import ConsoleError, NotAllowed
from collector.console.users import User
from collector.reporting import FINDING_TEXT, reports
from linewarden.sla.periods import month_containing

if TYPE_CHECKING:
    from collector.console.app import Deps
    from collector.console.sessions import Session

VIEW_ROLES = ("plant_it", "procurement", "admin")
APPROVE_ROLES = ("plant_it", "admin")
DAY_MS = 86_400_000


def require_view(user: User) -> None:
    if user.role not in VIEW_ROLES:
        raise NotAllowed("change approvals and remote sessions are for plant IT, procurement and admins")


def require_approve(user: User) -> None:
    if user.role not in APPROVE_ROLES:
        raise NotAllowed("only plant IT approves change windows")


def page(deps: Deps, user: User, session: Session, common: dict[str, Any]) -> dict[str, Any]:
    require_view(user)
    now = deps.clock()
    found = change_records.approvals(deps.store)
    windows = [
        {"w": w, "a": found.get(w.id)}
        for w in deps.store.maintenance_windows(now - 90 * DAY_MS, 2**62)
        if w.kind == "change" and (not user.viewer.sites or w.site in user.viewer.sites)
    ]
    contracts = []
    for cid in sorted(deps.book.contracts):
        label = month_containing(now, deps.book.contracts[cid].contract.timezone).label
        [r] = reports(deps.store, deps.book, label, cid, now_ms=now)
        contracts.append({"id": cid, "vendor": r.vendor, "period": label, "changes": r.patch_changes,
                          "sessions": r.remote_sessions})  # fmt: skip
    return {**common, "windows": windows, "contracts": contracts, "findings": FINDING_TEXT,
            "may_approve": user.role in APPROVE_ROLES}  # fmt: skip


def approve(deps: Deps, user: User, window_id: str, data: dict[str, str], origin: str) -> None:
    require_approve(user)
    try:
        change_records.approve(deps.store, window_id, data.get("change_ref", ""), data.get("note", ""),
                               f"console:{user.username}", origin, deps.clock())  # fmt: skip
    except change_records.ApprovalRefused as exc:
        raise ConsoleError(str(exc)) from None


def revoke(deps: Deps, user: User, window_id: str, origin: str) -> None:
    require_approve(user)
    if not change_records.revoke(deps.store, window_id, f"console:{user.username}", origin, deps.clock()):
        raise ConsoleError(f"window {window_id} has no live approval")
