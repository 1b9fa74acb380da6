"""A collector's contracts and calendars, loaded from the files its config names and checked against each
other (calendar names, the production calendar). Part of the core so that `linewarden config check` can
follow a collector config's references too; reading the files goes through `config/load.py`."""

from __future__ import annotations

import glob
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from linewarden.calendar import ALWAYS_ID, Calendar
from linewarden.config.calendar import CalendarConfig
from linewarden.config.collector import CollectorConfig
from linewarden.config.contacts import ContactsConfig
from linewarden.config.contract import BusinessDays, ContractConfig
from linewarden.config.load import load
from linewarden.domain import Severity
from linewarden.errors import ConfigError, LinewardenError
from linewarden.rota import Directory, coverage_problems, entry_problem
from linewarden.sla.coverage import CoverageCalendar
from linewarden.timeutil import ms_to_dt

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
    contacts: Directory | None = None
    """The escalation contacts directory, when the collector config names one."""

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


def load_directory(
    config: CollectorConfig, config_path: Path, calendars: dict[str, CoverageCalendar],
    contracts: dict[str, ContractConfig], files: dict[str, tuple[str, str]], now_ms: int,
) -> Directory | None:
    """The contacts directory, checked: its calendars exist, every rota covers each instant of the next
    `escalation.check_horizon` exactly once, and every contract's notify entry reaches someone."""
    if config.escalation.contacts is None:
        return None
    path = config.escalation.contacts
    path = path if path.is_absolute() else config_path.parent / path
    directory = Directory(load(ContactsConfig, path), calendars)
    horizon = now_ms + int(config.escalation.check_horizon.total_seconds() * 1000)
    for n, rota in enumerate(directory.config.rota):
        for s, shift in enumerate(rota.shifts):
            if shift.calendar not in calendars and shift.calendar != ALWAYS_ID:
                raise ConfigError(str(path), f"rota[{n}].shifts[{s}].calendar", f"no calendar {shift.calendar!r}")
        problems = coverage_problems(rota, calendars, now_ms, horizon)
        if problems:
            p = problems[0]
            what = "nobody is on call" if p.kind == "gap" else f"shifts {list(p.shifts)} are all on call"
            days = config.escalation.check_horizon.days
            raise ConfigError(str(path), f"rota[{n}]", f"{rota.party} level {rota.level}: {what} from"
                              f" {ms_to_dt(p.start).isoformat()} to {ms_to_dt(p.end).isoformat()}"
                              f" ({len(problems)} such stretch(es) in the next {days} days)")
    for cid, contract in contracts.items():
        for i, level in enumerate(contract.escalation):
            for key, entries in (("notify", level.notify), ("notify_outside_coverage", level.notify_outside_coverage)):
                for entry in entries:
                    problem = entry_problem(entry, directory.contacts, directory.rotas, contract.contract.vendor)
                    if problem is not None:
                        raise ConfigError(files.get(cid, (cid, ""))[0], f"escalation[{i}].{key}", problem)
    return directory


def config_files(config: CollectorConfig, config_path: Path) -> dict[str, list[Path]]:
    """The contract and calendar files a collector config names, as `load_book` reads them."""
    base = config_path.parent
    return {"contracts": _files(config.contracts, base), "calendars": _files(config.calendars, base)}


def _check_reachable(
    contract: ContractConfig, calendars: dict[str, CoverageCalendar], path: str, now: int
) -> None:
    """Every deadline the contract's timers compute must fall within the support calendar's search horizon:
    checked here, so a target of more open time than the calendar has is refused at config check, not when a
    ticket is recorded."""
    name = contract.support.coverage
    calendar = calendars.get(name) or Calendar.always(contract.contract.timezone)
    needs: list[tuple[str, int]] = []
    for severity in Severity:
        target = contract.support.targets.for_severity(severity)
        if target is None:
            continue
        response, resolution = _ms(target.response), _ms(target.resolution)
        needs += [(f"support.targets.{severity.value}.response", response),
                  (f"support.targets.{severity.value}.resolution", resolution)]
        for i, level in enumerate(contract.escalation):
            after = level.after.strip()
            if severity in level.severities and after.endswith("%"):
                needs.append((f"escalation[{i}].after", int(response * float(after[:-1]) / 100)))
    due = contract.rca.due
    checks: list[tuple[str, Callable[[int, int], int], int]] = [(k, calendar.add_open_time, ms) for k, ms in needs]
    if isinstance(due, BusinessDays):
        checks.append(("rca.due", calendar.add_business_days, due.days))
    for key, add, amount in checks:
        try:
            add(now, amount)
        except LinewardenError as exc:
            raise ConfigError(path, key, str(exc)) from None


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)


def load_book(config: CollectorConfig, config_path: Path, now_ms: int | None = None) -> ContractBook:
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
    now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    for cid, contract in contracts.items():
        _check_reachable(contract, calendars, files[cid][0], now)
    directory = load_directory(config, config_path, calendars, contracts, files, now)
    return ContractBook(contracts, calendars, files, directory)
