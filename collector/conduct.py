"""A contract's observed conduct for its report: version changes judged by its `[change_policy]` and the
remote sessions on its assets (linewarden/sla/patch_policy.py, linewarden/sla/remote_sessions.py).

Which assets: sessions on the contract's assets in scope; version changes on the production assets its
change policy names (a contract without a change policy judges none). Tickets: the incidents on the session's
asset, open from their opening to their measured resolution.
"""

from __future__ import annotations

import dataclasses

from collector import change_records
from collector.remote_access.records import sessions
from collector.store import Store
from collector.store.rows import PeriodData
from linewarden.book import ContractBook
from linewarden.config.contract import ContractConfig
from linewarden.sla.models import SlaInputs
from linewarden.sla.patch_policy import ApprovedWindow, evaluate
from linewarden.sla.periods import Period
from linewarden.sla.remote_sessions import OpenTicket, judge
from linewarden.sla.report import ContractReport, scope_assets
from linewarden.sla.scorecard import with_conduct


def fingerprint(store: Store) -> tuple[object, ...]:
    """Changes whenever what `add_conduct` reads changes (for caches of reports)."""
    with store.reader() as sql:
        row = sql.query(
            "SELECT (SELECT COUNT(*) FROM version_observations) AS v, (SELECT COUNT(*) FROM change_approvals) AS a,"
            " (SELECT COUNT(*) FROM change_approvals WHERE revoked_at IS NOT NULL) AS ar,"
            " (SELECT COUNT(*) FROM remote_sessions) AS s, (SELECT SUM(COALESCE(end_at, 0) + COALESCE(start_at, 0))"
            " FROM remote_sessions) AS se"
        )[0]
    return tuple(row.values())


def approved_windows(store: Store, data: PeriodData, book: ContractBook | None) -> list[ApprovedWindow]:
    return change_records.approved_windows(
        change_records.all_windows(store), change_records.approvals(store), data, book
    )


def add_conduct(
    report: ContractReport, store: Store, book: ContractBook, contract: ContractConfig, period: Period,
    data: PeriodData, inputs: SlaInputs, as_of_ms: int,
) -> ContractReport:
    windows = approved_windows(store, data, book)
    changes = []
    policy = contract.change_policy
    if policy is not None:
        staging_of = policy.staging_of()
        assets = sorted(set(staging_of) | set(staging_of.values()))
        seen = change_records.observations(store, assets, as_of_ms)
        min_ms = int(policy.min_staging.total_seconds() * 1000)
        changes = evaluate(seen, staging_of, min_ms, windows, period.start_ms, period.end_ms, as_of_ms)
    in_scope = scope_assets(contract, inputs.criticality)
    tickets = [
        OpenTicket(i.id, i.asset, i.opened_at, i.resolved_at)
        for i in data.incidents
        if i.asset is not None and i.asset in in_scope and i.opened_at is not None
    ]
    mine = [s for s in sessions(store, period.start_ms, min(period.end_ms, as_of_ms + 1)) if s.asset in in_scope]
    judged = judge(mine, tickets, windows, period.start_ms, period.end_ms, as_of_ms)
    return dataclasses.replace(
        report,
        patch_changes=tuple(changes),
        remote_sessions=tuple(judged),
        scorecard=with_conduct(report.scorecard, changes, judged),
    )
