"""The one scoping rule of console users and API tokens (collector/scoping.py)."""

from __future__ import annotations

import tomllib

from collector.scoping import Viewer, contract_assets, sees_asset, sees_site, sees_vendor, visible_contracts
from linewarden.book import ContractBook
from linewarden.config.contract import ContractConfig
from tests.integration.test_collector_cli import CONTRACT


def _contract(cid: str, vendor: str, scope: str) -> ContractConfig:
    text = CONTRACT.replace('id = "plc-support"', f'id = "{cid}"').replace('"integrator"', f'"{vendor}"')
    return ContractConfig.model_validate(tomllib.loads(text.replace('assets = ["line3-plc"]', scope)))


BOOK = ContractBook({"a": _contract("a", "acme", 'assets = ["line3-plc"]'),
                     "b": _contract("b", "bolt", 'asset_classes = ["high"]\nexclude_assets = ["robot-9"]')}, {})
CRIT = {"line3-plc": "critical", "robot-1": "high", "robot-9": "high"}


def test_a_vendor_sees_its_own_vendor_only() -> None:
    acme = Viewer("vendor", "acme")
    assert sees_vendor(acme, "acme") and not sees_vendor(acme, "bolt")
    assert [c.contract.id for c in visible_contracts(acme, BOOK)] == ["a"]
    assert all(sees_vendor(Viewer(role), "bolt") for role in ("plant_it", "procurement", "admin", "plant"))


def test_assets_in_scope_by_name_class_and_exclusion() -> None:
    assert contract_assets(BOOK.contracts["b"], CRIT) == {"robot-1"}
    bolt = Viewer("vendor", "bolt")
    assert sees_asset(bolt, BOOK, "p1", "robot-1", CRIT)
    assert not sees_asset(bolt, BOOK, "p1", "robot-9", CRIT) and not sees_asset(bolt, BOOK, "p1", "line3-plc", CRIT)


def test_sites_limit_every_role() -> None:
    north = Viewer("plant_it", None, frozenset({"north"}))
    assert sees_site(north, "north") and not sees_site(north, "south")
    assert not sees_asset(north, BOOK, "south", "line3-plc", CRIT)
    assert sees_site(Viewer("admin"), "anywhere")
