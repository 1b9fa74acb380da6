"""Who may see what: one rule for the console's users and the API's tokens.

A viewer has a role and, for a vendor, the vendor it speaks for; it may be limited to some sites (none
named: every site). A vendor sees only its own vendor's contracts, their tickets and the assets in their
scope; every other role sees every vendor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from linewarden.book import ContractBook
from linewarden.config.contract import ContractConfig


@dataclass(frozen=True)
class Viewer:
    role: str
    vendor: str | None = None
    sites: frozenset[str] = field(default_factory=frozenset)
    """Sites the viewer is limited to; empty: every site."""

    @property
    def is_vendor(self) -> bool:
        return self.role == "vendor"


def sees_vendor(viewer: Viewer, vendor: str) -> bool:
    """May the viewer see the contracts and tickets of `vendor`?"""
    return not viewer.is_vendor or viewer.vendor == vendor


def sees_site(viewer: Viewer, site: str) -> bool:
    return not viewer.sites or site in viewer.sites


def visible_contracts(viewer: Viewer, book: ContractBook) -> list[ContractConfig]:
    return [book.contracts[c] for c in sorted(book.contracts) if sees_vendor(viewer, book.contracts[c].contract.vendor)]


def contract_assets(contract: ContractConfig, criticality: dict[str, str]) -> set[str]:
    """The assets in a contract's scope: named, through its services, or by asset class (`criticality`:
    asset → class, as the registry knows them), less the excluded ones."""
    services = {s.id: s for s in contract.services}
    out = set(contract.scope.assets)
    for sid in contract.scope.services:
        if sid in services:
            out.update(services[sid].components)
    classes = {c.value for c in contract.scope.asset_classes}
    out.update(a for a, c in criticality.items() if c in classes)
    return out - set(contract.scope.exclude_assets)


def sees_asset(viewer: Viewer, book: ContractBook, site: str, asset: str, criticality: dict[str, str]) -> bool:
    """A vendor sees the assets of its contracts' scope; the others every asset of their sites."""
    if not sees_site(viewer, site):
        return False
    if not viewer.is_vendor:
        return True
    return any(asset in contract_assets(c, criticality) for c in visible_contracts(viewer, book))


def vendor_assets(viewer: Viewer, book: ContractBook, criticality: dict[str, str]) -> set[str] | None:
    """The assets a vendor viewer may see (None: no vendor limit)."""
    if not viewer.is_vendor:
        return None
    out: set[str] = set()
    for c in visible_contracts(viewer, book):
        out |= contract_assets(c, criticality)
    return out

