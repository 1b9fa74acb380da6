"""Incidents from confirmed state changes: open, raise, resolve, flap damping and site-link grouping.

Rules (docs/figures.md):

- Every transition yields a `state_change` event. A target that turns DOWN or DEGRADED without an open
  incident opens one (`opened_at` = the transition's time, severity from the matrix with the production
  calendar at that time). UNKNOWN never opens an incident and never resolves one.
- An open incident is raised (`incident_updated`) when a worse state or the start of production makes its
  severity worse; it is never lowered. `tick` re-checks the calendar, so production starting raises it.
- An incident resolves when all its targets are UP again, dated at the transition to UP. If a target had more
  than `flap.max_changes` changes within `flap.window` when it came back (counting transitions into or out of
  DOWN/DEGRADED; DOWN<->DEGRADED and UNKNOWN<->UP do not count), the incident stays open and
  resolves only once its targets have stayed UP for `flap.window` (dated at the return to UP); falling back
  before then continues the same incident.
- Site link: when every target behind the agent (two or more) turns DOWN within the hold time, one incident of
  kind "site_link" covers them all instead of one per target. A target that turns DOWN is held (no incident
  yet) only while that is still possible: every other target is held or in a failing run (`pending_fail`)
  and none has an open incident. A hold ends after `site_link_hold_ms` at the latest, or at the target's next
  transition; it then opens the target's own incident, dated as if it had not been held.
- Configuration: a target confirmed UNKNOWN because of how it is configured (see linewarden.debounce) opens
  an incident of kind "configuration" (severity S3, plant IT's: never a vendor's ticket or figure), unless an
  incident of it is open already; its next transition resolves it (dated there) and is then handled like
  any other.
- Every event carries the cause code of the transition behind it (`cause`, optional on the wire); a
  site-link incident's is "site.link_down".
- Transitions of targets the tracker does not know are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec import Struct

from linewarden.config.agent import FlapConfig, SeverityMatrix
from linewarden.debounce import Transition
from linewarden.domain import Criticality, Severity, State
from linewarden.errors import LinewardenError
from linewarden.severity import severity_for, worst
from linewarden.wire import (
    IncidentKind,
    IncidentOpenedBody,
    IncidentResolvedBody,
    IncidentUpdatedBody,
    StateChangeBody,
    WireModel,
)

Emitted = tuple[str, WireModel]
_BAD = (State.DOWN, State.DEGRADED)
SITE_LINK_CAUSE = "site.link_down"
CONFIGURATION_SEVERITY = Severity.S3


@dataclass(frozen=True)
class TargetRef:
    asset: str
    criticality: Criticality


class _Incident(Struct, kw_only=True):
    id: str
    kind: IncidentKind
    members: list[str]
    severity: Severity
    state: State
    opened_at: int
    resolving_since: int | None = None


class _Held(Struct, kw_only=True, frozen=True):
    transition_from: State
    state: State
    at_ms: int
    reason: str
    cause: str = ""
    since_ms: int

    def transition(self) -> Transition:
        return Transition(self.transition_from, self.state, self.at_ms, self.reason, self.cause)


class _Snapshot(Struct):
    states: dict[str, State]
    changes: dict[str, list[int]]
    incidents: list[_Incident]
    held: dict[str, _Held]


class IncidentTracker:
    def __init__(
        self,
        targets: Mapping[str, TargetRef],
        matrix: SeverityMatrix,
        in_production: Callable[[int], bool],
        flap: FlapConfig,
        new_id: Callable[[], str],
        site_link_hold_ms: int,
    ) -> None:
        self._targets = dict(targets)
        self._matrix = matrix
        self._in_production = in_production
        self._max_changes = flap.max_changes
        self._window_ms = int(flap.window.total_seconds() * 1000)
        self._new_id = new_id
        self._hold_ms = site_link_hold_ms
        self._states: dict[str, State] = {t: State.UNKNOWN for t in self._targets}
        self._changes: dict[str, list[int]] = {t: [] for t in self._targets}
        self._incidents: dict[str, _Incident] = {}
        self._by_target: dict[str, str] = {}
        self._held: dict[str, _Held] = {}
        self._pending_fail: frozenset[str] = frozenset()

    # ------------------------------------------------------------ public

    def incident_of(self, target: str) -> str | None:
        """The id of the open incident covering `target`, if any."""
        return self._by_target.get(target)

    @property
    def held(self) -> frozenset[str]:
        """Targets that are DOWN but whose incident waits for the site-link check."""
        return frozenset(self._held)

    def process(self, now_ms: int, transitions: Mapping[str, Transition], pending_fail: Set[str]) -> list[Emitted]:
        """Apply one poll round: `transitions` by target id, `pending_fail` = targets in a run towards DOWN."""
        self._pending_fail = frozenset(pending_fail)
        out: list[Emitted] = []
        for target, tr in transitions.items():
            ref = self._targets.get(target)
            if ref is None:
                continue
            out.append(("state_change", self._state_change(target, ref, tr)))
            if (tr.from_ in _BAD) != (tr.to in _BAD):
                self._record_change(target, tr.at_ms)
            if target in self._held:
                out.extend(self._release(target))
            self._states[target] = tr.to
            incident = self._incident_for(target)
            if incident is not None and incident.kind == "configuration":
                out.append(self._resolve(incident, tr.at_ms))
                incident = None
            if incident is not None:
                out.extend(self._apply(incident, tr))
            elif tr.configuration:
                out.append(self._open("configuration", [target], tr, tr.reason))
            elif tr.to == State.DOWN:
                self._held[target] = _Held(
                    transition_from=tr.from_,
                    state=tr.to,
                    at_ms=tr.at_ms,
                    reason=tr.reason,
                    cause=tr.cause,
                    since_ms=now_ms,
                )
            elif tr.to == State.DEGRADED:
                out.append(self._open_target(target, tr))
        out.extend(self._open_site_link())
        out.extend(self.tick(now_ms))
        return out

    def tick(self, now_ms: int, pending_fail: Set[str] | None = None) -> list[Emitted]:
        """Release expired holds, resolve incidents that stayed UP long enough, raise severities by calendar.

        Without `pending_fail` the set from the last `process` call is used.
        """
        if pending_fail is not None:
            self._pending_fail = frozenset(pending_fail)
        out: list[Emitted] = []
        keep_holding = self._site_link_possible()
        for target in list(self._held):
            if not keep_holding or now_ms - self._held[target].since_ms >= self._hold_ms:
                out.extend(self._release(target))
        for incident in list(self._incidents.values()):
            since = incident.resolving_since
            if since is not None and now_ms - since >= self._window_ms:
                out.append(self._resolve(incident, since))
        for incident in list(self._incidents.values()):
            out.extend(self._raise(incident, now_ms, "production calendar: in production"))
        return out

    # ------------------------------------------------------------ persistence

    def snapshot(self) -> dict[str, Any]:
        snap = _Snapshot(
            states=self._states,
            changes=self._changes,
            incidents=list(self._incidents.values()),
            held=self._held,
        )
        data: dict[str, Any] = msgspec.to_builtins(snap)
        return data

    def restore(self, data: Mapping[str, Any], now_ms: int) -> list[Emitted]:
        """Load a `snapshot()`; targets no longer configured are dropped, and incidents left without any
        target are resolved (returned as events). Raises LinewardenError (changing nothing) when malformed."""
        try:
            snap = msgspec.convert(data, _Snapshot)
        except msgspec.ValidationError as exc:
            raise LinewardenError(f"bad incident tracker snapshot: {exc}") from None
        known = self._targets.keys()
        self._states = {t: snap.states.get(t, State.UNKNOWN) for t in known}
        self._changes = {t: snap.changes.get(t, []) for t in known}
        self._held = {t: h for t, h in snap.held.items() if t in known}
        self._incidents, self._by_target = {}, {}
        out: list[Emitted] = []
        for incident in snap.incidents:
            incident.members = [t for t in incident.members if t in known]
            if not incident.members:
                out.append(
                    (
                        "incident_resolved",
                        IncidentResolvedBody(
                            incident=incident.id, at=now_ms, reason="target removed from the configuration"
                        ),
                    )
                )
                continue
            self._incidents[incident.id] = incident
            self._by_target.update((t, incident.id) for t in incident.members)
        return out

    # ------------------------------------------------------------ internals

    def _state_change(self, target: str, ref: TargetRef, tr: Transition) -> StateChangeBody:
        return StateChangeBody(
            target=target,
            asset=ref.asset,
            from_=tr.from_,
            to=tr.to,
            reason=tr.reason,
            cause=tr.cause or None,
            at=tr.at_ms,
        )

    def _record_change(self, target: str, at_ms: int) -> None:
        changes = self._changes[target]
        changes.append(at_ms)
        horizon = max(changes) - self._window_ms
        self._changes[target] = [c for c in changes if c > horizon]

    def _flapping(self, target: str, at_ms: int) -> bool:
        recent = [c for c in self._changes[target] if at_ms - self._window_ms < c <= at_ms]
        return len(recent) > self._max_changes

    def _incident_for(self, target: str) -> _Incident | None:
        incident_id = self._by_target.get(target)
        return None if incident_id is None else self._incidents[incident_id]

    def _severity(self, members: Iterable[str], at_ms: int) -> Severity | None:
        in_production = self._in_production(at_ms)
        return worst(
            [severity_for(self._matrix, self._targets[t].criticality, self._states[t], in_production) for t in members]
        )

    def _open(
        self, kind: IncidentKind, members: list[str], tr: Transition, reason: str, cause: str | None = None
    ) -> Emitted:
        severity = CONFIGURATION_SEVERITY if kind == "configuration" else self._severity(members, tr.at_ms)
        assert severity is not None, "opened only for DOWN or DEGRADED targets, or by configuration"
        incident = _Incident(
            id=self._new_id(), kind=kind, members=members, severity=severity, state=tr.to, opened_at=tr.at_ms
        )
        self._incidents[incident.id] = incident
        self._by_target.update((t, incident.id) for t in members)
        single = self._targets[members[0]] if kind != "site_link" else None
        return (
            "incident_opened",
            IncidentOpenedBody(
                incident=incident.id,
                kind=kind,
                target=members[0] if single else None,
                asset=single.asset if single else None,
                criticality=single.criticality if single else None,
                severity=severity,
                state=tr.to,
                reason=reason,
                cause=cause if cause is not None else tr.cause or None,
                in_production=self._in_production(tr.at_ms),
                opened_at=tr.at_ms,
                targets=members,
            ),
        )

    def _open_target(self, target: str, tr: Transition) -> Emitted:
        return self._open("target", [target], tr, tr.reason)

    def _release(self, target: str) -> list[Emitted]:
        held = self._held.pop(target)
        return [self._open_target(target, held.transition())]

    def _open_site_link(self) -> list[Emitted]:
        if len(self._targets) < 2 or self._held.keys() != self._targets.keys():
            return []
        first = min(self._held.values(), key=lambda h: h.at_ms)
        members = sorted(self._held)
        self._held.clear()
        reason = f"all {len(members)} targets behind the agent DOWN (site link?); first: {first.reason}"
        return [self._open("site_link", members, first.transition(), reason, SITE_LINK_CAUSE)]

    def _site_link_possible(self) -> bool:
        others = [t for t in self._targets if t not in self._held]
        return (
            len(self._targets) >= 2
            and bool(others)
            and all(t in self._pending_fail and t not in self._by_target for t in others)
        )

    def _apply(self, incident: _Incident, tr: Transition) -> list[Emitted]:
        if tr.to in _BAD:
            incident.resolving_since = None
            return self._raise(incident, tr.at_ms, tr.reason, tr.cause)
        if tr.to == State.UNKNOWN or any(self._states[t] != State.UP for t in incident.members):
            incident.resolving_since = None
            return []
        if any(self._flapping(t, tr.at_ms) for t in incident.members):
            incident.resolving_since = tr.at_ms
            return []
        return [self._resolve(incident, tr.at_ms)]

    def _raise(self, incident: _Incident, at_ms: int, reason: str, cause: str = "") -> list[Emitted]:
        """Raise `incident` if its targets' states and the calendar at `at_ms` make it worse."""
        bad = [self._states[t] for t in incident.members if self._states[t] in _BAD]
        if not bad:
            return []
        incident.state = State.DOWN if State.DOWN in bad else State.DEGRADED
        severity = self._severity(incident.members, at_ms)
        if severity is None or not severity.worse_than(incident.severity):
            return []
        incident.severity = severity
        return [
            (
                "incident_updated",
                IncidentUpdatedBody(
                    incident=incident.id,
                    severity=severity,
                    state=incident.state,
                    reason=reason,
                    cause=cause or None,
                    in_production=self._in_production(at_ms),
                    at=at_ms,
                ),
            )
        ]

    def _resolve(self, incident: _Incident, at_ms: int) -> Emitted:
        del self._incidents[incident.id]
        for t in incident.members:
            self._by_target.pop(t, None)
        return ("incident_resolved", IncidentResolvedBody(incident=incident.id, at=at_ms))
