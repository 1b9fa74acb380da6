"""Cause codes through debounce, incidents, the wire and recurrence; configuration faults of a never-working
target are UNKNOWN and a plant-IT configuration incident, not a vendor outage."""

from __future__ import annotations

from datetime import timedelta
from itertools import count

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linewarden.config.agent import FlapConfig, SeverityMatrix
from linewarden.debounce import Debouncer, judge
from linewarden.domain import Criticality, Severity, State
from linewarden.errors import WireError
from linewarden.incidents import IncidentTracker, TargetRef
from linewarden.sla.models import Incident
from linewarden.sla.recurrence import WINDOW_MS, recurring_ids
from linewarden.wire import IncidentOpenedBody, StateChangeBody, StateChangeEvent, parse_event

U, G, D, X = State.UP, State.DEGRADED, State.DOWN, State.UNKNOWN
S = 1000
H = 3600 * S
NODE = "config.unknown_node"


def tracker() -> IncidentTracker:
    ids = count(1)
    return IncidentTracker(
        {"plc-1": TargetRef("line3-plc", Criticality.CRITICAL)},
        SeverityMatrix(),
        lambda ms: True,
        FlapConfig(max_changes=4, window=timedelta(minutes=10)),
        lambda: f"inc-{next(ids)}",
        site_link_hold_ms=0,
    )


# ---------------------------------------------------------------- debounce


def test_transition_carries_the_cause_of_its_first_result() -> None:
    d = Debouncer(fail_threshold=3, recover_threshold=2)
    d.observe(U, 0, "ok")
    d.observe(U, 1, "ok")
    assert d.observe(G, 10, "slow answer: 912 ms", "http.slow") is None
    d.observe(G, 20, "slow answer: 430 ms", "http.slow")
    tr = d.observe(G, 30, "slow answer: 611 ms", "http.slow")
    assert tr is not None and (tr.to, tr.at_ms, tr.reason, tr.cause) == (G, 10, "slow answer: 912 ms", "http.slow")


def test_snapshot_keeps_cause_and_worked_and_old_snapshots_load() -> None:
    d = Debouncer(1, 1)
    d.observe(D, 0, "refused", "tcp.refused")
    copy = Debouncer(1, 1)
    copy.restore(d.snapshot())
    assert (copy.state, copy.cause, copy.worked) == (D, "tcp.refused", False)
    old = Debouncer(1, 1)
    old.restore({"state": "UP", "pending": {"state": "DOWN", "count": 1, "since_ms": 5, "reason": "x"}})
    assert (old.cause, old.worked, old.pending is not None and old.pending.cause) == ("", True, "")


def test_configuration_fault_of_a_never_working_target_is_unknown() -> None:
    assert judge(D, "node s=Nope: BadNodeIdUnknown", "opcua.unknown_node", NODE, worked=False) == (
        X,
        "configuration: node s=Nope: BadNodeIdUnknown",
        NODE,
    )
    assert judge(D, "r", "opcua.unknown_node", NODE, worked=True) == (D, "r", "opcua.unknown_node")
    assert judge(D, "r", "tcp.refused", "", worked=False) == (D, "r", "tcp.refused")


def test_configuration_unknown_confirms_from_startup_unknown_and_worked_flips_it() -> None:
    d = Debouncer(fail_threshold=2, recover_threshold=1)
    assert d.observe(D, 0, "node x: BadNodeIdUnknown", "opcua.unknown_node", NODE) is None
    tr = d.observe(D, 10, "node x: BadNodeIdUnknown", "opcua.unknown_node", NODE)
    assert tr is not None and (tr.from_, tr.to, tr.at_ms, tr.cause, tr.configuration) == (X, X, 0, NODE, True)
    assert tr.reason == "configuration: node x: BadNodeIdUnknown"
    assert d.observe(D, 20, "node x: BadNodeIdUnknown", "opcua.unknown_node", NODE) is None  # no repeat
    up = d.observe(U, 30, "ok")
    assert up is not None and up.to == U and d.worked
    # the program changed after the target worked: now it is the vendor's DOWN
    d.observe(D, 40, "node x: BadNodeIdUnknown", "opcua.unknown_node", NODE)
    down = d.observe(D, 50, "node x: BadNodeIdUnknown", "opcua.unknown_node", NODE)
    assert down is not None and (down.to, down.cause, down.configuration) == (D, "opcua.unknown_node", False)


# ---------------------------------------------------------------- incidents


def test_cause_flows_into_state_change_and_incident_events() -> None:
    t = tracker()
    d = Debouncer(1, 1)
    tr = d.observe(D, 0, "modbus exception 4 (server device failure) from unit 1", "modbus.exception.4")
    assert tr is not None
    events = dict(t.process(5 * S, {"plc-1": tr}, set()))
    change = events["state_change"]
    opened = events["incident_opened"]
    assert isinstance(change, StateChangeBody) and change.cause == "modbus.exception.4"
    assert isinstance(opened, IncidentOpenedBody) and opened.cause == "modbus.exception.4"


def test_configuration_transition_opens_a_plant_it_incident_that_the_next_transition_resolves() -> None:
    t = tracker()
    d = Debouncer(1, 1)
    tr = d.observe(D, 0, "namespace urn:x is not on the server", "opcua.unknown_namespace", "config.unknown_namespace")
    assert tr is not None
    events = t.process(5 * S, {"plc-1": tr}, set())
    assert [k for k, _ in events] == ["state_change", "incident_opened"]
    opened = events[1][1]
    assert isinstance(opened, IncidentOpenedBody)
    assert (opened.kind, opened.state, opened.severity, opened.cause) == (
        "configuration",
        X,
        Severity.S3,
        "config.unknown_namespace",
    )
    assert opened.reason.startswith("configuration: ")
    fixed = d.observe(U, 60 * S, "ok")
    assert fixed is not None
    kinds = [k for k, _ in t.process(61 * S, {"plc-1": fixed}, set())]
    assert kinds == ["state_change", "incident_resolved"]


# ---------------------------------------------------------------- wire


def test_old_events_without_cause_still_validate_and_bad_causes_are_refused() -> None:
    body = {"target": "plc-1", "from": "UP", "to": "DOWN", "reason": "no answer", "at": 1}
    old = parse_event({"seq": 1, "ts": 1, "type": "state_change", "body": body})
    assert isinstance(old, StateChangeEvent) and old.body.cause is None
    new = parse_event({"seq": 1, "ts": 1, "type": "state_change", "body": {**body, "cause": "http.status.503"}})
    assert isinstance(new, StateChangeEvent) and new.body.cause == "http.status.503"
    for bad in ("HTTP 503", "", "a..b", "x" * 200):
        with pytest.raises(WireError):
            parse_event({"seq": 1, "ts": 1, "type": "state_change", "body": {**body, "cause": bad}})


# ---------------------------------------------------------------- recurrence


def _inc(id: str, opened: int, restored: int, reason: str, cause: str = "") -> Incident:
    return Incident(id, "mes-app", Severity.S2, reason, opened, restored_at_ms=restored, cause=cause)


def test_repeats_of_one_fault_with_different_measurements_recur() -> None:
    got = recurring_ids(
        [
            _inc("1", 0, H, "slow answer: 912 ms (limit 800 ms)", "http.slow"),
            _inc("2", 2 * H, 3 * H, "slow answer: 430 ms (limit 400 ms)", "http.slow"),
            _inc("3", 4 * H, 5 * H, "HTTP 503 Service Unavailable", "http.status.503"),
            _inc("4", 5 * H + WINDOW_MS + 1, 6 * H + WINDOW_MS, "HTTP 503 Service Unavailable", "http.status.503"),
        ],
        10**13,
    )
    assert got == {"2"}


def test_incidents_without_a_code_fall_back_to_their_reason_text() -> None:
    got = recurring_ids(
        [_inc("1", 0, H, "no answer"), _inc("2", 2 * H, 3 * H, "no answer"), _inc("3", 4 * H, 5 * H, "other")],
        10**13,
    )
    assert got == {"2"}


# ---------------------------------------------------------------- tickets


def test_ticket_carries_the_cause_code_and_old_stored_tickets_still_load() -> None:
    from collector.ticketing.base import Ticket, ticket_for_incident

    body = IncidentOpenedBody(
        incident="inc-1", target="mes", asset="mes-app", severity=Severity.S2, state=D,
        reason="HTTP 503 Service Unavailable", cause="http.status.503", opened_at=0,
    )  # fmt: skip
    ticket = ticket_for_incident(body, "c1", "acme")
    assert ticket.cause == "http.status.503" and "Cause code: http.status.503" in ticket.description
    stored = ticket.to_json().replace(', "cause": "http.status.503"', "")
    assert "cause" not in stored and Ticket.from_json(stored).cause == ""


@given(st.text(max_size=80))
def test_every_condition_cause_is_a_valid_wire_cause(name: str) -> None:
    from pydantic import TypeAdapter

    from agent.conditions import code_part
    from linewarden.wire import Cause

    adapter: TypeAdapter[str] = TypeAdapter(Cause)
    for code in (f"condition.{code_part(name)}", f"condition.{code_part(name)}.stale", f"service.{code_part(name)}"):
        assert adapter.validate_python(code) == code
