"""OPC UA Alarms & Conditions: the alarms a server reports, and the target state the configured rules give.

The book keeps one entry per condition (source and condition name) from the event notifications of an event
subscription; an event that is no longer retained (inactive and acknowledged) removes it. After every
(re)connect the probe clears the book and asks the server for a ConditionRefresh, so the book holds what the
server holds now. Text from the device is cut to MAX_TEXT characters without control characters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.conditions import Failure
from linewarden.config.targets import AlarmRule

MAX_TEXT = 200


@dataclass(frozen=True)
class Alarm:
    source: str
    condition: str
    severity: int
    message: str
    active: bool
    acknowledged: bool


def _text(value: Any) -> str:
    text = getattr(value, "Text", value)
    shown = "".join(c if c.isprintable() else " " for c in str(text if text is not None else ""))
    return shown.strip()[:MAX_TEXT]


def alarm_of(fields: Mapping[str, Any]) -> tuple[Alarm, bool] | None:
    """The alarm an event's fields describe and whether the server still retains it; None for an event that
    is not a condition's (no condition name)."""
    condition = _text(fields.get("ConditionName"))
    if not condition:
        return None
    try:
        severity = max(1, min(1000, int(fields.get("Severity") or 1)))
    except (TypeError, ValueError):
        severity = 1
    active = fields.get("ActiveState/Id")
    if active is None:  # a server that sends only the display text
        active = _text(fields.get("ActiveState")).lower() == "active"
    acked = fields.get("AckedState/Id")
    if acked is None:
        acked = _text(fields.get("AckedState")).lower() == "acknowledged"
    alarm = Alarm(
        _text(fields.get("SourceName")) or _text(fields.get("SourceNode")) or "server",
        condition,
        severity,
        _text(fields.get("Message")),
        bool(active),
        bool(acked),
    )
    retain = fields.get("Retain")
    return alarm, bool(retain) if retain is not None else (alarm.active or not alarm.acknowledged)


class AlarmBook:
    """The current alarms, fed by asyncua's event_notification."""

    def __init__(self) -> None:
        self.alarms: dict[tuple[str, str], Alarm] = {}

    def event_notification(self, event: Any) -> None:
        fields = {name: variant.Value for name, variant in event.get_event_props_as_fields_dict().items()}
        self.update(fields)

    def update(self, fields: Mapping[str, Any]) -> None:
        found = alarm_of(fields)
        if found is None:
            return
        alarm, retained = found
        key = (alarm.source, alarm.condition)
        if retained:
            self.alarms[key] = alarm
        else:
            self.alarms.pop(key, None)

    def status_change_notification(self, status: Any) -> None:
        self.clear()

    def clear(self) -> None:
        self.alarms.clear()


def matches(rule: AlarmRule, alarm: Alarm) -> bool:
    return (
        alarm.severity >= rule.min_severity
        and alarm.active == rule.active
        and (rule.acknowledged is None or alarm.acknowledged == rule.acknowledged)
        and (rule.condition_name is None or alarm.condition == rule.condition_name)
    )


def alarm_failures(alarms: Sequence[Alarm], rules: Sequence[AlarmRule]) -> list[Failure]:
    """One failure per alarm that a rule matches (the worst state of the rules it matches), worst first
    and then by severity, so the reason shown is the alarm that matters most."""
    failures: list[tuple[int, int, Failure]] = []
    for alarm in alarms:
        states = [rule.state for rule in rules if matches(rule, alarm)]
        if not states:
            continue
        state = max(states, key=lambda s: 1 if s == "DOWN" else 0)
        ack = "acknowledged" if alarm.acknowledged else "unacknowledged"
        activity = "" if alarm.active else "cleared, "
        reason = f"alarm {alarm.source}/{alarm.condition} (severity {alarm.severity}, {activity}{ack})"
        if alarm.message:
            reason += f": {alarm.message}"
        failures.append((1 if state == "DOWN" else 0, alarm.severity, Failure(state, reason, "opcua.alarm")))
    failures.sort(key=lambda f: (-f[0], -f[1]))
    return [f for _, _, f in failures]
