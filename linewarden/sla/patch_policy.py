"""Patch and change policy, checked from observed versions: `evaluate(...)`, a pure function of its inputs.

Rules (docs/changes-and-remote-access.md says them for users):
- Per (asset, what) the observations, in time order, form runs: a run starts where the version differs from
  the one observed before it. The first run of an asset is its baseline (when it began is not known) and is
  not judged; every later run is a change at the moment its first observation was read.
- A change on a production asset (one the policy pairs with a staging asset) is an **untested patch** when the
  staging asset ran the new version (same `what`) for less than `min_staging_ms` before the change: the sum of
  the staging runs of that version, each from its first observation to the next different one (or the change).
- A change is an **unapproved change** when no approved change window covers the production asset at that
  moment (start <= at < end, approved no later than the change, not cancelled).
- A change back to the version of the run before the previous one is a **rollback**: that version ran in
  production before, so it is never an untested patch; it still needs an approved window.
- Only changes inside [start_ms, min(end_ms, as_of_ms)) are judged; observations after `as_of_ms` do not exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Finding = Literal["untested_patch", "unapproved_change"]


@dataclass(frozen=True)
class VersionSeen:
    asset: str
    what: str
    version: str
    at_ms: int


@dataclass(frozen=True)
class ApprovedWindow:
    id: str
    change_ref: str
    start_ms: int
    end_ms: int
    assets: frozenset[str]
    approved_at_ms: int
    approved_by: str
    cancelled: bool = False


@dataclass(frozen=True)
class Run:
    version: str
    since_ms: int
    until_ms: int | None  # the first observation of the next version; None while current


@dataclass(frozen=True)
class PatchChange:
    """One judged change on a production asset, with its evidence."""

    asset: str
    what: str
    old: str
    new: str
    at_ms: int
    staging_asset: str
    staged_ms: int
    required_ms: int
    staging_since_ms: int | None  # first observation of the new version on the staging asset
    window: str | None  # the approved window covering the change
    change_ref: str | None  # its change (CAB) reference
    rollback: bool
    findings: tuple[Finding, ...]


def runs(observations: Iterable[VersionSeen]) -> dict[tuple[str, str], list[Run]]:
    """Per (asset, what), the runs of its observations."""
    ordered = sorted(observations, key=lambda o: (o.asset, o.what, o.at_ms, o.version))
    out: dict[tuple[str, str], list[Run]] = {}
    for o in ordered:
        mine = out.setdefault((o.asset, o.what), [])
        if mine and mine[-1].version == o.version:
            continue
        if mine:
            mine[-1] = Run(mine[-1].version, mine[-1].since_ms, o.at_ms)
        mine.append(Run(o.version, o.at_ms, None))
    return out


def staged_ms(staging_runs: Iterable[Run], version: str, before_ms: int) -> tuple[int, int | None]:
    """(time the staging asset ran `version` before `before_ms`, first time it was seen running it)."""
    total, first = 0, None
    for r in staging_runs:
        if r.version != version or r.since_ms >= before_ms:
            continue
        end = before_ms if r.until_ms is None else min(r.until_ms, before_ms)
        total += end - r.since_ms
        first = r.since_ms if first is None else min(first, r.since_ms)
    return total, first


def covering_window(windows: Iterable[ApprovedWindow], asset: str, at_ms: int) -> ApprovedWindow | None:
    for w in sorted(windows, key=lambda w: (w.start_ms, w.id)):
        if not w.cancelled and asset in w.assets and w.start_ms <= at_ms < w.end_ms and w.approved_at_ms <= at_ms:
            return w
    return None


def evaluate(
    observations: Iterable[VersionSeen],
    staging_of: Mapping[str, str],
    min_staging_ms: int,
    windows: Iterable[ApprovedWindow],
    start_ms: int,
    end_ms: int,
    as_of_ms: int,
) -> list[PatchChange]:
    """Every change on a production asset (a key of `staging_of`) in the period, judged by the rules above."""
    known = [o for o in observations if o.at_ms <= as_of_ms]
    window_list = list(windows)
    by_key = runs(known)
    stop = min(end_ms, as_of_ms + 1)
    out: list[PatchChange] = []
    for (asset, what), mine in sorted(by_key.items()):
        staging = staging_of.get(asset)
        if staging is None:
            continue
        for i in range(1, len(mine)):
            change = mine[i]
            if not start_ms <= change.since_ms < stop:
                continue
            rollback = i >= 2 and mine[i - 2].version == change.version
            staged, since = staged_ms(by_key.get((staging, what), []), change.version, change.since_ms)
            window = covering_window(window_list, asset, change.since_ms)
            findings: list[Finding] = []
            if not rollback and staged < min_staging_ms:
                findings.append("untested_patch")
            if window is None:
                findings.append("unapproved_change")
            out.append(
                PatchChange(
                    asset=asset,
                    what=what,
                    old=mine[i - 1].version,
                    new=change.version,
                    at_ms=change.since_ms,
                    staging_asset=staging,
                    staged_ms=staged,
                    required_ms=min_staging_ms,
                    staging_since_ms=since,
                    window=None if window is None else window.id,
                    change_ref=None if window is None else window.change_ref,
                    rollback=rollback,
                    findings=tuple(findings),
                )
            )
    return sorted(out, key=lambda c: (c.at_ms, c.asset, c.what))
