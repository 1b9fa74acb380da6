"""Builders of wire messages for the collector's tests."""

from __future__ import annotations

from typing import Any

from linewarden.domain import Criticality, ProbeKind, Severity, State
from linewarden.wire import (
    Birth,
    Death,
    EventBatch,
    HeartbeatBody,
    HeartbeatEvent,
    IncidentOpenedBody,
    IncidentOpenedEvent,
    StateChangeBody,
    StateChangeEvent,
    TargetInfo,
    build,
    encode,
)

T0 = 1_780_000_000_000  # a fixed instant (2026-05-28), ms


def birth(site: str, agent: str, epoch: str = "e1", boot: str = "b1", ts: int = T0, **kw: Any) -> Birth:
    return Birth(
        agent=agent,
        site=site,
        epoch=epoch,
        boot=boot,
        ts=ts,
        version="0.1.0",
        config_hash="abc",
        targets=[TargetInfo(id="plc-1", kind=ProbeKind.OPCUA, asset="line3-plc", criticality=Criticality.CRITICAL)],
        **kw,
    )


def death(site: str, agent: str, epoch: str = "e1", boot: str = "b1", ts: int = T0, reason: str = "stopped") -> Death:
    return Death(agent=agent, site=site, epoch=epoch, boot=boot, ts=ts, reason=reason)


def heartbeat(seq: int, ts: int) -> HeartbeatEvent:
    return HeartbeatEvent(seq=seq, ts=ts, body=HeartbeatBody(interval_s=60, states={"plc-1": State.UP}))


def state_change(seq: int, at: int, to: State = State.DOWN, frm: State = State.UP) -> StateChangeEvent:
    body = build(
        StateChangeBody,
        {"target": "plc-1", "asset": "line3-plc", "from": frm, "to": to, "reason": "no answer", "at": at},
    )
    return StateChangeEvent(seq=seq, ts=at + 5_000, body=body)


def incident_opened(seq: int, at: int, incident: str = "inc-1") -> IncidentOpenedEvent:
    body = IncidentOpenedBody(
        incident=incident,
        target="plc-1",
        asset="line3-plc",
        criticality=Criticality.CRITICAL,
        severity=Severity.S1,
        state=State.DOWN,
        reason="no answer",
        in_production=True,
        opened_at=at,
    )
    return IncidentOpenedEvent(seq=seq, ts=at, body=body)


def batch(site: str, agent: str, events: list[Any], epoch: str = "e1", boot: str = "b1") -> EventBatch:
    return EventBatch(agent=agent, site=site, epoch=epoch, boot=boot, events=events)


def heartbeats(site: str, agent: str, seqs: list[int], epoch: str = "e1", boot: str = "b1") -> bytes:
    """A batch of heartbeats, seq n measured at T0 + n seconds."""
    return encode(batch(site, agent, [heartbeat(s, T0 + s * 1000) for s in seqs], epoch=epoch, boot=boot))
