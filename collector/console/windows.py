"""Maintenance windows as the console shows and changes them: the notice each contract requires, and
recording or cancelling a window with its audit entry.

`record_window` has the signature of `collector.maintenance.record_window` (the server-side stamping and
site/line/class scopes being added there); until that is merged it records the window the way the API
does today, so the console and the API write windows alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from collector.audit import append_entry
from collector.scoping import Viewer, contract_assets, visible_contracts
from collector.store.base import Store
from collector.store.rows import MaintenanceWindowRow
from linewarden.book import ContractBook
from linewarden.wire import MaintenanceWindowWire


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


def window_visible(viewer: Viewer, book: ContractBook, w: MaintenanceWindowRow, criticality: dict[str, str]) -> bool:
    return vendor_may_cover(viewer, book, w.assets, w.services, criticality) if viewer.is_vendor else True


def record_window(
    store: Store, book: ContractBook | None, site: str, window: MaintenanceWindowWire, received_at: int,
    backdate_reason: str, actor: str, origin: str,
) -> list[str]:
    del book, backdate_reason  # used by collector.maintenance.record_window once merged
    with store.transaction() as tx:
        tx.add_maintenance_window(site, window, None)
        append_entry(tx.sql, actor, origin, "maintenance.recorded", f"window/{window.id}",
                     {"site": site, **window.model_dump(mode="json"), "received_at": received_at}, received_at)
    return []


def cancel_window(store: Store, window_id: str, now: int, actor: str, origin: str) -> bool:
    with store.transaction() as tx:
        done = tx.cancel_maintenance_window(window_id, now)
        if done:
            append_entry(tx.sql, actor, origin, "maintenance.cancelled", f"window/{window_id}", {}, now)
    return done
