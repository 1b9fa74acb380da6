"""Admission: what an agent's events may touch, decided before anything is stored.

Rules (docs/threat-model.md, boundaries "agent data" and "sequence numbers"):

- An incident belongs to the (site, agent) whose event first named it. An `incident_opened`, `_updated` or
  `_resolved` naming an incident of another (site, agent) is refused: no agent can resolve, re-classify (e.g. as
  `site_link`) or re-open another's incident.
- A `state_change`, `change_detected` or `version_observed` must name a target in its agent's registry (the
  targets its births and imported target lists declared). Its asset is the registry's: an asset the event names
  is ignored, so an agent can only ever touch the assets of its own targets. An `incident_opened` of kind
  "target" or "configuration" must name a registered target (its asset, too, is the registry's); one of kind
  "site_link" may list only registered targets and name no asset other than theirs.
- A `gap` may declare lost only seqs below its own (`from_seq <= to_seq < seq`).
- Live only: a seq more than `max_ahead` beyond the epoch's ack is implausible. It is dead-lettered but its seq
  stays free, so a forged far-future event never makes the real one look like a duplicate later.

A refused event is dead-lettered with the reason and its seq counts as received, so the ack moves past it and
the agent is never stalled; a resent refused event is dropped silently (it was counted once). A history import
(`strict=False`) may name targets no registry knows (the old tool never sent a birth): their asset is the one
the event names, else the target id; the incident and gap rules hold for imports too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from collector.store.base import Writer
from linewarden.wire import (
    ChangeDetectedEvent,
    Event,
    GapEvent,
    IncidentOpenedBody,
    IncidentOpenedEvent,
    IncidentResolvedEvent,
    IncidentUpdatedEvent,
    StateChangeEvent,
    VersionObservedEvent,
)

_INCIDENT = (IncidentOpenedEvent, IncidentUpdatedEvent, IncidentResolvedEvent)
_TARGETED = (StateChangeEvent, ChangeDetectedEvent, VersionObservedEvent)
_NAMING_TARGETS = frozenset({"incident_opened", "state_change", "change_detected", "version_observed"})
_SCREENED_TYPES = _NAMING_TARGETS | {"incident_updated", "incident_resolved", "gap"}
_seq = attrgetter("seq")
_type = attrgetter("type")


@dataclass
class Verdict:
    admitted: list[Event] = field(default_factory=list)
    refused: list[tuple[Event, str]] = field(default_factory=list)  # dead-lettered; the ack passes their seqs
    implausible: list[tuple[Event, str]] = field(default_factory=list)  # dead-lettered; their seqs stay free


def reads_store(events: Sequence[Event]) -> bool:
    """Whether screening these events reads the store (the registry, refused seqs, incident owners), beyond the
    epoch's ack."""
    return not _SCREENED_TYPES.isdisjoint(map(_type, events))


def screen(
    tx: Writer, site: str, agent: str, epoch: str, events: Sequence[Event], strict: bool, max_ahead: int | None
) -> Verdict:
    """Sort one agent's events (one batch, or one import line) into admitted, refused and implausible.

    The ingest hot path: heartbeats and metrics need no look-up, and the ack is read only for a batch whose seqs
    could lie beyond the plausible range at all.
    """
    verdict = Verdict()
    top = max(map(_seq, events), default=0)
    acked = tx.acked_through(site, agent, epoch) if max_ahead is not None and top > max_ahead else 0
    if _SCREENED_TYPES.isdisjoint(map(_type, events)) and (max_ahead is None or top <= acked + max_ahead):
        verdict.admitted = list(events)  # heartbeats and metrics, all plausible: nothing to look at one by one
        return verdict
    screened = [e for e in events if e.type in _SCREENED_TYPES]
    refused_before: set[int] = set()
    registry: dict[str, str] = {}
    owners: dict[str, tuple[str, str]] = {}
    if screened:
        refused_before = tx.refused_seqs(site, agent, epoch, min(e.seq for e in screened), top)
        if strict and any(e.type in _NAMING_TARGETS for e in screened):
            registry = tx.registry_of(site, agent)
        incidents = sorted({e.body.incident for e in screened if isinstance(e, _INCIDENT)})
        owners = tx.incident_owners(incidents) if incidents else {}
    me = (site, agent)
    for e in events:
        if max_ahead is not None and e.seq > acked + max_ahead:
            verdict.implausible.append((e, f"more than {max_ahead} beyond the epoch's ack ({acked}): implausible"))
        elif e.type not in _SCREENED_TYPES:
            verdict.admitted.append(e)
        elif e.seq not in refused_before:
            reason = _refusal(e, me, owners, registry if strict else None)
            if reason is None:
                verdict.admitted.append(e)
                if isinstance(e, _INCIDENT):
                    owners.setdefault(e.body.incident, me)
            else:
                verdict.refused.append((e, reason))
                refused_before.add(e.seq)
    return verdict


def _refusal(
    e: Event, me: tuple[str, str], owners: dict[str, tuple[str, str]], registry: dict[str, str] | None
) -> str | None:
    """Why `e` may not be stored, or None. `registry` None: any target is accepted (history import)."""
    if isinstance(e, GapEvent):
        g = e.body
        if g.to_seq >= e.seq:
            return f"gap declares seqs up to {g.to_seq}, not below its own seq {e.seq}"
        if g.from_seq > g.to_seq:
            return f"gap from_seq {g.from_seq} is after its to_seq {g.to_seq}"
        return None
    if isinstance(e, _INCIDENT):
        owner = owners.get(e.body.incident, me)
        if owner != me:
            return f"incident {e.body.incident} belongs to {owner[0]}/{owner[1]}"
        if isinstance(e, IncidentOpenedEvent) and registry is not None:
            return _unowned_targets(e.body, me, registry)
        return None
    if isinstance(e, _TARGETED) and registry is not None and e.body.target not in registry:
        return _unregistered(e.body.target, me)
    return None


def _unowned_targets(o: IncidentOpenedBody, me: tuple[str, str], registry: dict[str, str]) -> str | None:
    if o.kind != "site_link" and o.target is None:
        return f"an incident of kind {o.kind} names no target"
    for t in ([o.target] if o.target else []) + list(o.targets):
        if t not in registry:
            return _unregistered(t, me)
    if o.kind == "site_link" and o.asset is not None and o.asset not in {registry[t] for t in o.targets}:
        return f"site_link incident names asset {o.asset}, not one of its targets' assets"
    return None


def _unregistered(target: str, me: tuple[str, str]) -> str:
    return f"target {target} is not in the registry of {me[0]}/{me[1]} (no birth or imported target list names it)"
