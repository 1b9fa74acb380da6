"""The alarm book and the rules that map alarms to states (agent.probes.opcua_alarms): tables, no server."""

from __future__ import annotations

from typing import Any

import pytest

from agent.probes.opcua_alarms import Alarm, AlarmBook, alarm_failures, alarm_of
from linewarden.config.targets import AlarmRule
from linewarden.domain import State


def _event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"SourceName": "press", "ConditionName": "Oil", "Severity": 800, "Message": "low oil",
                            "ActiveState/Id": True, "AckedState/Id": False, "Retain": True}
    return {**base, **fields}


def test_book_keeps_retained_conditions_and_drops_the_rest() -> None:
    book = AlarmBook()
    book.update(_event())
    book.update(_event(ConditionName="Door", Severity=200))
    book.update({"Message": "an event that is no condition's"})
    assert sorted(c for _, c in book.alarms) == ["Door", "Oil"]
    book.update(_event(**{"ActiveState/Id": False, "AckedState/Id": True, "Retain": False}))
    assert list(book.alarms) == [("press", "Door")]


def test_device_text_is_bounded_and_printable() -> None:
    found = alarm_of(_event(Message="bad\x1b[31m" + "x" * 500, Severity="loud"))
    assert found is not None
    alarm, retained = found
    assert retained and alarm.severity == 1
    assert "\x1b" not in alarm.message and len(alarm.message) == 200


ALARM = Alarm("press", "Oil", 800, "low oil", active=True, acknowledged=False)
DOWN_UNACKED = AlarmRule(state=State.DOWN, min_severity=700, acknowledged=False)
DEGRADED_ANY = AlarmRule(state=State.DEGRADED, min_severity=100)
CLEARED_UNACKED = AlarmRule(state=State.DEGRADED, active=False, acknowledged=False)


@pytest.mark.parametrize(
    ("alarm", "states"),
    [
        (ALARM, [State.DOWN]),
        (Alarm("press", "Oil", 800, "", True, True), [State.DEGRADED]),
        (Alarm("press", "Oil", 99, "", True, False), []),
        (Alarm("press", "Oil", 800, "", False, False), [State.DEGRADED]),
        (Alarm("press", "Oil", 800, "", False, True), []),
    ],
)
def test_rules(alarm: Alarm, states: list[State]) -> None:
    failures = alarm_failures([alarm], [DEGRADED_ANY, DOWN_UNACKED, CLEARED_UNACKED])
    assert [f.state for f in failures] == states


def test_worst_alarm_first_with_the_plc_words() -> None:
    low = Alarm("press", "Door", 300, "door open", True, False)
    failures = alarm_failures([low, ALARM], [DOWN_UNACKED, DEGRADED_ANY])
    assert [f.reason for f in failures] == [
        "alarm press/Oil (severity 800, unacknowledged): low oil",
        "alarm press/Door (severity 300, unacknowledged): door open",
    ]
    only_door = AlarmRule(state=State.DOWN, condition_name="Door")
    door = [f.reason for f in alarm_failures([low, ALARM], [only_door])]
    assert door == ["alarm press/Door (severity 300, unacknowledged): door open"]
