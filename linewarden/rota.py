"""Who is on call: pure functions of a rota, the calendars and an instant (int ms UTC), no I/O.

A rota (a party's escalation level) is a list of shifts; a shift holds while its calendar is open (or closed),
and its contacts take turns every `rotate_every` counted from `rotation_start`. A complete rota has exactly one
shift holding at every instant: `coverage_problems` finds the gaps (nobody) and overlaps (several) over a span,
from the calendars' own open intervals, so a config check can refuse an incomplete rota. If shifts overlap
anyway, the first listed wins.

Escalation levels name whom to notify: a contact id, or `on-call:vendor:<level>` / `on-call:plant:<level>`,
the contract's vendor's or the incident's site's rota of that level at the moment the level fires.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

from linewarden.calendar import ALWAYS_ID, Calendar
from linewarden.config.contacts import Contact, ContactsConfig, Rota, Shift
from linewarden.sla.coverage import CoverageCalendar

ON_CALL = "on-call:"
_ALWAYS = Calendar.always()


def _calendar(name: str, calendars: Mapping[str, CoverageCalendar]) -> CoverageCalendar:
    found = calendars.get(name)
    if found is None and name == ALWAYS_ID:
        return _ALWAYS
    if found is None:
        raise KeyError(name)
    return found


def holds(shift: Shift, calendars: Mapping[str, CoverageCalendar], at_ms: int) -> bool:
    return _calendar(shift.calendar, calendars).is_open(at_ms) == (shift.when == "open")


def turn(shift: Shift, at_ms: int) -> str:
    """The contact whose turn it is in this shift at `at_ms` (turns before the rotation start count back)."""
    start = int(shift.rotation_start.timestamp() * 1000)
    every = int(shift.rotate_every.total_seconds() * 1000)
    return shift.contacts[((at_ms - start) // every) % len(shift.contacts)]


def on_call(rota: Rota, calendars: Mapping[str, CoverageCalendar], at_ms: int) -> str | None:
    """The contact id on call in `rota` at `at_ms`; None in a gap."""
    for shift in rota.shifts:
        if holds(shift, calendars, at_ms):
            return turn(shift, at_ms)
    return None


@dataclass(frozen=True)
class Problem:
    kind: str  # gap | overlap
    start: int
    end: int
    shifts: tuple[int, ...]  # indexes of the shifts holding (none for a gap)


def coverage_problems(
    rota: Rota, calendars: Mapping[str, CoverageCalendar], start_ms: int, end_ms: int
) -> list[Problem]:
    """Every stretch of [start_ms, end_ms) where not exactly one shift holds, merged, in time order."""
    cuts = {start_ms, end_ms}
    for name in {s.calendar for s in rota.shifts}:
        for s, e in _calendar(name, calendars).open_intervals(start_ms, end_ms):
            cuts.update((s, e))
    points = sorted(cuts)
    out: list[Problem] = []
    for a, b in itertools.pairwise(points):
        holding = tuple(i for i, shift in enumerate(rota.shifts) if holds(shift, calendars, a))
        if len(holding) == 1:
            continue
        kind = "gap" if not holding else "overlap"
        if out and out[-1].kind == kind and out[-1].end == a and out[-1].shifts == holding:
            out[-1] = Problem(kind, out[-1].start, b, holding)
        else:
            out.append(Problem(kind, a, b, holding))
    return out


@dataclass(frozen=True)
class Recipient:
    """Whom one notify entry reaches at one moment: a contact, or nobody (`problem` says why)."""

    entry: str
    contact: Contact | None
    problem: str = ""


class Directory:
    """The contacts and rotas of one collector, with the calendars their shifts name."""

    def __init__(self, config: ContactsConfig, calendars: Mapping[str, CoverageCalendar]) -> None:
        self.config = config
        self.contacts = {c.id: c for c in config.contact}
        self.rotas = {(r.party, r.level): r for r in config.rota}
        self._calendars = calendars

    def resolve(self, entry: str, vendor: str, site: str, at_ms: int) -> Recipient:
        if not entry.startswith(ON_CALL):
            found = self.contacts.get(entry)
            return Recipient(entry, found, "" if found else f"no contact {entry!r} in the directory")
        side, _, level = entry[len(ON_CALL):].partition(":")
        party = f"vendor:{vendor}" if side == "vendor" else f"plant:{site}"
        rota = self.rotas.get((party, int(level))) if level.isdigit() and side in ("vendor", "plant") else None
        if rota is None:
            return Recipient(entry, None, f"no rota for {party} level {level}")
        who = on_call(rota, self._calendars, at_ms)
        if who is None:
            return Recipient(entry, None, f"nobody on call for {party} level {level} at this moment")
        return Recipient(entry, self.contacts[who])


def entry_problem(entry: str, contacts: Mapping[str, Contact], rotas: Mapping[tuple[str, int], Rota],
                  vendor: str) -> str | None:
    """Why a contract's notify entry cannot reach anyone, as far as the config alone tells; None if it can."""
    if not entry.startswith(ON_CALL):
        return None if entry in contacts else f"no contact {entry!r} in the contacts directory"
    side, _, level = entry[len(ON_CALL):].partition(":")
    if side not in ("vendor", "plant") or not level.isdigit():
        return f"{entry!r}: write on-call:vendor:<level> or on-call:plant:<level>"
    if side == "vendor" and (f"vendor:{vendor}", int(level)) not in rotas:
        return f"{entry!r}: no rota for vendor:{vendor} level {level}"
    if side == "plant" and not any(p.startswith("plant:") and n == int(level) for p, n in rotas):
        return f"{entry!r}: no plant rota of level {level}"
    return None
