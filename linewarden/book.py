"""A collector's contracts and calendars, loaded from the files its config names and checked against each
other (calendar names, the production calendar). Part of the core so that `linewarden config check` can
follow a collector config's references too; reading the files goes through `config/load.py`."""

from __future__ import annotations

import glob
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from linewarden.calendar import Calendar
from linewarden.config.calendar import CalendarConfig
from linewarden.config.collector import CollectorConfig
from linewarden.config.contract import ContractConfig
from linewarden.config.load import load
from linewarden.errors import ConfigError
from linewarden.sla.coverage import CoverageCalendar

PRODUCTION = "production"


def _files(patterns: list[str], base: Path) -> list[Path]:
    found: set[Path] = set()
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        found.update(Path(p) for p in glob.glob(full))
    return sorted(found)


@dataclass(frozen=True)
class ContractBook:
    """Every contract and calendar of one collector, checked against each other."""

    contracts: dict[str, ContractConfig]
    calendars: dict[str, CoverageCalendar]
    files: dict[str, tuple[str, str]] = field(default_factory=dict)
    """contract id → (file, SHA-256 of its bytes), for the audit log."""

    def contract(self, contract_id: str) -> ContractConfig:
        try:
            return self.contracts[contract_id]
        except KeyError:
            known = ", ".join(sorted(self.contracts)) or "none"
            raise ConfigError("contracts", contract_id, f"no such contract (known: {known})") from None

    def covering(self, asset: str) -> list[ContractConfig]:
        """Contracts whose scope names the asset directly or through a service (not by asset class)."""
        out = []
        for c in self.contracts.values():
            if asset in c.scope.exclude_assets:
                continue
            services = {s.id: s for s in c.services}
            in_services = any(asset in services[sid].components for sid in c.scope.services)
            if asset in c.scope.assets or in_services:
                out.append(c)
        return out


def config_files(config: CollectorConfig, config_path: Path) -> dict[str, list[Path]]:
    """The contract and calendar files a collector config names, as `load_book` reads them."""
    base = config_path.parent
    return {"contracts": _files(config.contracts, base), "calendars": _files(config.calendars, base)}


def load_book(config: CollectorConfig, config_path: Path) -> ContractBook:
    base = config_path.parent
    calendars: dict[str, CoverageCalendar] = {}
    for path in _files(config.calendars, base):
        section = load(CalendarConfig, path).calendar
        if section.id in calendars:
            raise ConfigError(str(path), "calendar.id", f"calendar id {section.id!r} is used by another file")
        calendars[section.id] = Calendar.from_config(section)
    production = config.collector.production_calendar
    if production is not None:
        if production not in calendars:
            raise ConfigError(
                str(config_path), "collector.production_calendar", f"no calendar with id {production!r}"
            )
        calendars[PRODUCTION] = calendars[production]
    contracts: dict[str, ContractConfig] = {}
    files: dict[str, tuple[str, str]] = {}
    for path in _files(config.contracts, base):
        contract = load(ContractConfig, path)
        cid = contract.contract.id
        if cid in contracts:
            raise ConfigError(str(path), "contract.id", f"contract id {cid!r} is used by another file")
        names = [contract.support.coverage] + [u.coverage for u in contract.uptime]
        for key, name in zip(["support.coverage"] + [f"uptime[{i}].coverage" for i in range(len(contract.uptime))],
                             names, strict=True):
            if name not in ("24x7", PRODUCTION) and name not in calendars:
                raise ConfigError(str(path), key, f"no calendar with id {name!r} among {config.calendars}")
            if name == PRODUCTION and PRODUCTION not in calendars:
                raise ConfigError(
                    str(path), key, "'production' needs collector.production_calendar in the collector config"
                )
        contracts[cid] = contract
        files[cid] = (str(path), hashlib.sha256(path.read_bytes()).hexdigest())
    return ContractBook(contracts, calendars, files)
