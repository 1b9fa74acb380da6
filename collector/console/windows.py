"""Maintenance windows as the console shows and changes them: the notice each contract requires, who may
announce what, and cancelling with its audit entry (recording is `collector.maintenance.record_window`)."""

from __future__ import annotations

from dataclasses import dataclass

from collector.audit import append_entry
from collector.maintenance import Scoped, selected_assets, site_assets
from collector.scoping import Viewer, contract_assets, visible_contracts
from collector.store.base import Store
from collector.store.rows import MaintenanceWindowRow
from linewarden.book import ContractBook


@dataclass(frozen=True)
class Notice:
    contract_id: str
    required_ms: int
    given_ms: int

    @property
    def enough(self) -> bool:
        return self.given_ms >= self.required_ms


def notices(
    book: ContractBook, assets: tuple[str, ...], services: tuple[str, ...], start_ms: int, announced_ms: int,
    criticality: dict[str, str],
) -> list[Notice]:
    """Per contract the window concerns (its assets or services in the contract's scope): notice required
    versus given (start − announcement)."""
    out = []
    for cid in sorted(book.contracts):
        c = book.contracts[cid]
        own_services = {s.id for s in c.services}
        if set(assets) & contract_assets(c, criticality) or set(services) & own_services:
            required = int(c.maintenance.notice.total_seconds() * 1000)
            out.append(Notice(cid, required, start_ms - announced_ms))
    return out


def vendor_may_cover(
    viewer: Viewer, book: ContractBook, assets: tuple[str, ...], services: tuple[str, ...],
    criticality: dict[str, str],
) -> bool:
    """A vendor user may announce windows only over its own contracts' scope."""
    if not viewer.is_vendor:
        return True
    own = visible_contracts(viewer, book)
    mine = set().union(*(contract_assets(c, criticality) for c in own)) if own else set()
    my_services = {s.id for c in own for s in c.services}
    return bool(assets or services) and set(assets) <= mine and set(services) <= my_services


def covered_assets(store: Store, site: str, w: Scoped) -> tuple[str, ...]:
    """The assets a window names or selects (whole site, lines, asset classes), as the registry knows them."""
    with store.reader() as sql:
        return selected_assets(w, site, site_assets(sql, site))


def window_visible(
    viewer: Viewer, book: ContractBook, store: Store, w: MaintenanceWindowRow, criticality: dict[str, str]
) -> bool:
    if not viewer.is_vendor:
        return True
    return vendor_may_cover(viewer, book, covered_assets(store, w.site, w), w.services, criticality)


def cancel_window(store: Store, window_id: str, now: int, actor: str, origin: str) -> bool:
    with store.transaction() as tx:
        done = tx.cancel_maintenance_window(window_id, now)
        if done:
            append_entry(tx.sql, actor, origin, "maintenance.cancelled", f"window/{window_id}", {}, now)
    return done
