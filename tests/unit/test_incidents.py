"""Incident tracking: open, raise, never lower, resolve, UNKNOWN, flap damping, site link, persistence."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from itertools import count

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linewarden.config.agent import FlapConfig, SeverityMatrix
from linewarden.debounce import Transition
from linewarden.domain import Criticality, Severity, State
from linewarden.errors import LinewardenError
from linewarden.incidents import Emitted, IncidentTracker, TargetRef
from linewarden.wire import IncidentOpenedBody, IncidentResolvedBody, IncidentUpdatedBody, StateChangeBody

U, G, D, X = State.UP, State.DEGRADED, State.DOWN, State.UNKNOWN
S = 1000
MIN = 60 * S
HOLD = 30 * S

TARGETS = {
    "plc-1": TargetRef("line3-plc", Criticality.CRITICAL),
    "mes": TargetRef("mes-app", Criticality.HIGH),
    "db": TargetRef("mes-db", Criticality.MEDIUM),
}


def make(
    targets: dict[str, TargetRef] | None = None,
    in_production: Callable[[int], bool] = lambda ms: True,
    flap: FlapConfig | None = None,
) -> IncidentTracker:
    ids: Iterator[int] = count(1)
    return IncidentTracker(
        TARGETS if targets is None else targets,
        SeverityMatrix(),
        in_production,
        flap or FlapConfig(max_changes=4, window=timedelta(minutes=10)),
        lambda: f"inc-{next(ids)}",
        site_link_hold_ms=HOLD,
    )


def step(
    tracker: IncidentTracker, target: str, from_: State, to: State, at: int, pending: set[str] | None = None
) -> list[Emitted]:
    return tracker.process(at + 5 * S, {target: Transition(from_, to, at, f"{to} reason")}, pending or set())


def kinds(events: list[Emitted]) -> list[str]:
    return [kind for kind, _ in events]


def bodies(events: list[Emitted], kind: str) -> list[object]:
    return [body for k, body in events if k == kind]


def up(tracker: IncidentTracker, *targets: str) -> None:
    tracker.process(0, {t: Transition(X, U, 0, "ok") for t in targets or TARGETS}, set())


# ---------------------------------------------------------------- lifecycle


def test_open_raise_never_lower_resolve() -> None:
    tracker = make()
    up(tracker)
    events = step(tracker, "plc-1", U, G, 10 * S)
    assert kinds(events) == ["state_change", "incident_opened"]
    change = events[0][1]
    assert isinstance(change, StateChangeBody)
    assert (change.target, change.asset, change.from_, change.to, change.at) == ("plc-1", "line3-plc", U, G, 10 * S)
    opened = events[1][1]
    assert opened == IncidentOpenedBody(
        incident="inc-1",
        kind="target",
        target="plc-1",
        asset="line3-plc",
        criticality=Criticality.CRITICAL,
        severity=Severity.S2,
        state=G,
        reason="DEGRADED reason",
        in_production=True,
        opened_at=10 * S,
        targets=["plc-1"],
    )
    assert tracker.incident_of("plc-1") == "inc-1"

    events = step(tracker, "plc-1", G, D, 20 * S)
    assert kinds(events) == ["state_change", "incident_updated"]
    assert events[1][1] == IncidentUpdatedBody(
        incident="inc-1", severity=Severity.S1, state=D, reason="DOWN reason", in_production=True, at=20 * S
    )

    assert kinds(step(tracker, "plc-1", D, G, 30 * S)) == ["state_change"]  # not lowered

    events = step(tracker, "plc-1", G, U, 40 * S)
    assert kinds(events) == ["state_change", "incident_resolved"]
    assert events[1][1] == IncidentResolvedBody(incident="inc-1", at=40 * S)
    assert tracker.incident_of("plc-1") is None


def test_recovery_from_up_opens_nothing() -> None:
    tracker = make()
    events = tracker.process(S, {"mes": Transition(X, U, 0, "ok")}, set())
    assert kinds(events) == ["state_change"]


def test_unknown_neither_opens_nor_resolves() -> None:
    tracker = make()
    up(tracker)
    assert kinds(step(tracker, "mes", U, X, 10 * S)) == ["state_change"]
    assert kinds(step(tracker, "mes", X, D, 20 * S)) == ["state_change", "incident_opened"]
    assert kinds(step(tracker, "mes", D, X, 30 * S)) == ["state_change"]
    assert tracker.incident_of("mes") == "inc-1"
    events = step(tracker, "mes", X, U, 40 * S)
    assert kinds(events) == ["state_change", "incident_resolved"]


def test_transitions_of_unknown_targets_are_ignored() -> None:
    tracker = make()
    assert step(tracker, "ghost", U, D, 10 * S) == []


# ---------------------------------------------------------------- production calendar

PRODUCTION_STARTS = 100 * MIN


def in_production(ms: int) -> bool:
    return ms >= PRODUCTION_STARTS


def test_entering_production_raises_severity() -> None:
    tracker = make(in_production=in_production)
    up(tracker)
    [opened] = bodies(step(tracker, "plc-1", U, D, 10 * MIN), "incident_opened")
    assert isinstance(opened, IncidentOpenedBody)
    assert (opened.severity, opened.in_production) == (Severity.S2, False)
    assert tracker.tick(PRODUCTION_STARTS - 1) == []
    [(kind, update)] = tracker.tick(PRODUCTION_STARTS + 2 * S)
    assert kind == "incident_updated"
    assert isinstance(update, IncidentUpdatedBody)
    assert (update.severity, update.in_production, update.at) == (Severity.S1, True, PRODUCTION_STARTS + 2 * S)
    assert "production" in update.reason
    assert tracker.tick(PRODUCTION_STARTS + 3 * S) == []


def test_leaving_production_never_lowers() -> None:
    tracker = make(in_production=lambda ms: ms < PRODUCTION_STARTS)
    up(tracker)
    [opened] = bodies(step(tracker, "mes", U, D, 10 * MIN), "incident_opened")
    assert isinstance(opened, IncidentOpenedBody) and opened.severity == Severity.S2
    assert tracker.tick(PRODUCTION_STARTS + S) == []
    # a worse state off production still raises only when its severity is worse than S2: DEGRADED is not
    assert kinds(step(tracker, "mes", D, G, PRODUCTION_STARTS + 2 * S)) == ["state_change"]


def test_severity_uses_calendar_at_transition_time() -> None:
    tracker = make(in_production=in_production)
    up(tracker)
    # the run began before production, confirmed after: dated (and judged) at its first probe
    events = tracker.process(PRODUCTION_STARTS + 10 * S, {"db": Transition(U, D, PRODUCTION_STARTS - S, "x")}, set())
    [opened] = bodies(events, "incident_opened")
    assert isinstance(opened, IncidentOpenedBody)
    assert (opened.severity, opened.in_production) == (Severity.S4, False)
    # and the same process call already raises it for production
    [update] = bodies(events, "incident_updated")
    assert isinstance(update, IncidentUpdatedBody) and update.severity == Severity.S3


# ---------------------------------------------------------------- flapping


def test_flapping_keeps_one_incident_open() -> None:
    tracker = make(targets={"plc-1": TARGETS["plc-1"]})
    up(tracker, "plc-1")
    t = 10 * S
    opened: list[str] = []
    resolved: list[str] = []
    state = U
    for _ in range(6):  # 12 changes, 10 s apart: far more than 4 within 10 minutes
        for new in (D, U):
            events = step(tracker, "plc-1", state, new, t)
            opened += [b.incident for b in bodies(events, "incident_opened") if isinstance(b, IncidentOpenedBody)]
            resolved += [b.incident for b in bodies(events, "incident_resolved") if isinstance(b, IncidentResolvedBody)]
            state, t = new, t + 10 * S
    # changes 1-4 resolve normally (2 incidents); from the 5th change on, one incident stays open
    assert opened == ["inc-1", "inc-2", "inc-3"]
    assert resolved == ["inc-1", "inc-2"]
    last_up = t - 10 * S
    assert tracker.incident_of("plc-1") == "inc-3"
    assert tracker.tick(last_up + 10 * MIN - 1) == []
    events = tracker.tick(last_up + 10 * MIN)
    assert events == [("incident_resolved", IncidentResolvedBody(incident="inc-3", at=last_up))]


def test_falling_back_while_resolving_continues_the_incident() -> None:
    tracker = make(targets={"plc-1": TARGETS["plc-1"]}, flap=FlapConfig(max_changes=2, window=timedelta(minutes=5)))
    up(tracker, "plc-1")
    step(tracker, "plc-1", U, D, 10 * S)
    assert kinds(step(tracker, "plc-1", D, U, 20 * S)) == ["state_change", "incident_resolved"]
    step(tracker, "plc-1", U, D, 30 * S)
    assert kinds(step(tracker, "plc-1", D, U, 40 * S)) == ["state_change"]  # 4 changes > 2: held open
    assert kinds(step(tracker, "plc-1", U, G, 50 * S)) == ["state_change"]  # same incident, S2 < S1
    assert tracker.incident_of("plc-1") == "inc-2"
    assert tracker.tick(40 * S + 5 * MIN) == []  # the UP period was interrupted
    step(tracker, "plc-1", G, U, 60 * S)
    assert kinds(tracker.tick(60 * S + 5 * MIN)) == ["incident_resolved"]


# ---------------------------------------------------------------- site link


def test_all_targets_down_in_one_round_is_one_site_link_incident() -> None:
    tracker = make()
    up(tracker)
    # plc-1 confirms first while the others are still in failing runs: held
    events = step(tracker, "plc-1", U, D, 10 * S, pending={"mes", "db"})
    assert kinds(events) == ["state_change"]
    assert tracker.held == {"plc-1"}
    events = tracker.process(
        20 * S, {"mes": Transition(U, D, 11 * S, "timeout"), "db": Transition(U, D, 12 * S, "timeout")}, set()
    )
    assert kinds(events) == ["state_change", "state_change", "incident_opened"]
    site = events[2][1]
    assert isinstance(site, IncidentOpenedBody)
    assert (site.kind, site.target, site.asset, site.targets) == ("site_link", None, None, ["db", "mes", "plc-1"])
    assert (site.severity, site.state, site.opened_at) == (Severity.S1, D, 10 * S)
    assert tracker.held == frozenset()
    assert {tracker.incident_of(t) for t in TARGETS} == {site.incident}
    # resolved only when every target is back
    assert kinds(step(tracker, "plc-1", D, U, 30 * S)) == ["state_change"]
    assert kinds(step(tracker, "mes", D, U, 31 * S)) == ["state_change"]
    events = step(tracker, "db", D, U, 32 * S)
    assert events[-1] == ("incident_resolved", IncidentResolvedBody(incident=site.incident, at=32 * S))


def test_site_link_in_a_single_round() -> None:
    tracker = make()
    up(tracker)
    events = tracker.process(20 * S, {t: Transition(U, D, 10 * S, "no route") for t in TARGETS}, set())
    assert kinds(events) == ["state_change"] * 3 + ["incident_opened"]


def test_hold_released_when_others_recover() -> None:
    tracker = make()
    up(tracker)
    step(tracker, "plc-1", U, D, 10 * S, pending={"mes", "db"})
    assert tracker.held == {"plc-1"}
    # mes' failing run broke off; db still pending, but a site link is no longer possible
    events = tracker.process(15 * S, {}, {"db"})
    [opened] = bodies(events, "incident_opened")
    assert isinstance(opened, IncidentOpenedBody)
    assert (opened.kind, opened.target, opened.opened_at) == ("target", "plc-1", 10 * S)


def test_hold_released_after_hold_time() -> None:
    tracker = make()
    up(tracker)
    step(tracker, "plc-1", U, D, 10 * S, pending={"mes", "db"})
    assert tracker.tick(15 * S + HOLD - 1) == []
    [opened] = bodies(tracker.tick(15 * S + HOLD), "incident_opened")
    assert isinstance(opened, IncidentOpenedBody) and opened.opened_at == 10 * S


def test_no_hold_when_others_are_not_failing() -> None:
    tracker = make()
    up(tracker)
    assert kinds(step(tracker, "plc-1", U, D, 10 * S, pending={"mes"})) == ["state_change", "incident_opened"]
    single = make(targets={"plc-1": TARGETS["plc-1"]})
    up(single, "plc-1")
    assert kinds(step(single, "plc-1", U, D, 10 * S, pending={"plc-1"})) == ["state_change", "incident_opened"]


def test_no_site_link_when_one_target_already_has_an_incident() -> None:
    tracker = make()
    up(tracker)
    step(tracker, "db", U, G, 5 * S)
    assert kinds(step(tracker, "plc-1", U, D, 10 * S, pending={"mes"})) == ["state_change", "incident_opened"]


def test_held_target_recovering_still_gets_its_incident() -> None:
    tracker = make()
    up(tracker)
    step(tracker, "plc-1", U, D, 10 * S, pending={"mes", "db"})
    events = step(tracker, "plc-1", D, U, 20 * S, pending={"mes", "db"})
    assert kinds(events) == ["state_change", "incident_opened", "incident_resolved"]
    opened, resolved = events[1][1], events[2][1]
    assert isinstance(opened, IncidentOpenedBody) and isinstance(resolved, IncidentResolvedBody)
    assert (opened.opened_at, resolved.at) == (10 * S, 20 * S)


# ---------------------------------------------------------------- persistence


def test_snapshot_restore_keeps_open_incidents_and_holds() -> None:
    tracker = make()
    up(tracker)
    step(tracker, "mes", U, D, 10 * S)
    step(tracker, "plc-1", U, D, 20 * S, pending={"db"})
    snap = tracker.snapshot()
    restored = make()
    assert restored.restore(snap, 30 * S) == []
    assert restored.incident_of("mes") == tracker.incident_of("mes")
    assert restored.snapshot() == snap
    events = step(restored, "mes", D, U, 40 * S)
    assert bodies(events, "incident_resolved") == [IncidentResolvedBody(incident="inc-1", at=40 * S)]


def test_restore_resolves_incidents_of_removed_targets() -> None:
    tracker = make()
    up(tracker)
    step(tracker, "mes", U, D, 10 * S)
    smaller = make(targets={"plc-1": TARGETS["plc-1"]})
    events = smaller.restore(tracker.snapshot(), 99 * S)
    assert kinds(events) == ["incident_resolved"]
    assert smaller.incident_of("mes") is None


# Snapshots the previous version (pydantic models) wrote, as the agent's outbox keeps them (JSON): a held target,
# and a flapping incident waiting to resolve.
PREVIOUS_HELD = (
    '{"states":{"plc-1":"UP","mes":"DOWN","db":"UP"},"changes":{"plc-1":[],"mes":[10000],"db":[]},"incidents":[],'
    '"held":{"mes":{"transition_from":"UP","state":"DOWN","at_ms":10000,"reason":"DOWN reason","cause":"",'
    '"since_ms":15000}}}'
)
PREVIOUS_RESOLVING = (
    '{"states":{"plc-1":"UP","mes":"UP","db":"UP"},"changes":{"plc-1":[],"mes":[],"db":[10000,11000,12000,13000,'
    '14000,15000]},"incidents":[{"id":"inc-3","kind":"target","members":["db"],"severity":"S4","state":"DEGRADED",'
    '"opened_at":14000,"resolving_since":15000}],"held":{}}'
)


def test_a_snapshot_of_the_previous_version_restores_and_is_written_back_alike() -> None:
    held = make()
    assert held.restore(json.loads(PREVIOUS_HELD), 16 * S) == []
    assert held.held == {"mes"} and held.snapshot() == json.loads(PREVIOUS_HELD)
    assert kinds(held.tick(10 * S + HOLD)) == ["incident_opened"]  # the hold ends as it would have
    resolving = make()
    assert resolving.restore(json.loads(PREVIOUS_RESOLVING), 16 * S) == []
    assert resolving.incident_of("db") == "inc-3" and resolving.snapshot() == json.loads(PREVIOUS_RESOLVING)
    assert bodies(resolving.tick(15 * S + 10 * MIN), "incident_resolved") == [
        IncidentResolvedBody(incident="inc-3", at=15 * S)
    ]


@pytest.mark.parametrize("bad", [{}, {"states": {"mes": "SIDEWAYS"}, "changes": {}, "incidents": [], "held": {}}])
def test_bad_snapshot_rejected(bad: dict[str, object]) -> None:
    tracker = make()
    up(tracker)
    step(tracker, "mes", U, D, 10 * S)
    with pytest.raises(LinewardenError):
        tracker.restore(bad, 0)
    assert tracker.incident_of("mes") == "inc-1"


# ---------------------------------------------------------------- invariants


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(sorted(TARGETS)), st.sampled_from([U, G, D, X]), st.booleans(), st.booleans()),
        max_size=40,
    )
)
def test_incident_invariants(steps: list[tuple[str, State, bool, bool]]) -> None:
    production = {"on": False}
    tracker = make(in_production=lambda ms: production["on"])
    states = dict.fromkeys(TARGETS, X)
    severity: dict[str, Severity] = {}
    closed: set[str] = set()
    now = 0
    for target, new, prod, others_failing in steps:
        production["on"] = prod
        now += 10 * S
        transitions = {} if states[target] == new else {target: Transition(states[target], new, now, "r")}
        pending = {t for t in TARGETS if t != target} if others_failing else set()
        events = tracker.process(now, transitions, pending) + tracker.tick(now + HOLD)
        states[target] = new
        for kind, body in events:
            if isinstance(body, IncidentOpenedBody):
                assert body.incident not in severity
                severity[body.incident] = body.severity
            elif isinstance(body, IncidentUpdatedBody):
                assert body.incident not in closed
                assert body.severity.worse_than(severity[body.incident])
                severity[body.incident] = body.severity
            elif isinstance(body, IncidentResolvedBody):
                assert body.incident in severity and body.incident not in closed
                closed.add(body.incident)
            else:
                assert kind == "state_change"
        # a target that is DOWN or DEGRADED is always covered once holds are over
        for t, state in states.items():
            if state in (D, G):
                assert tracker.incident_of(t) is not None
            if tracker.incident_of(t) is not None:
                assert tracker.incident_of(t) not in closed
