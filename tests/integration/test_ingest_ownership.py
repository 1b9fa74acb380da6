"""An event touches only what its agent owns, and acks cover only what was received (docs/threat-model.md).

Message by message against real SQLite with real wire payloads, and once over a real Mosquitto.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from msgspec import to_builtins
from msgspec.structs import replace

from collector.importer import import_lines
from collector.ingest import BIRTH_WAIT_MS, Ingest
from collector.service import CollectorService
from collector.store.base import Store
from collector.store.sqlite import SqliteStore
from collector.ticketing.dispatch import Dispatcher
from collector.ticketing.lifecycle import Lifecycle
from collector.ticketing.registry import make_sink
from linewarden.config.base import BrokerConfig
from linewarden.config.collector import CollectorConfig, CollectorSection, LivenessConfig
from linewarden.config.contract import WebhookSink
from linewarden.domain import Severity, State
from linewarden.mqtt import MqttClient
from linewarden.wire import (
    Ack,
    ChangeDetectedBody,
    ChangeDetectedEvent,
    GapBody,
    GapEvent,
    IncidentOpenedBody,
    IncidentOpenedEvent,
    IncidentResolvedBody,
    IncidentResolvedEvent,
    IncidentUpdatedBody,
    IncidentUpdatedEvent,
    ack_topic,
    birth_topic,
    death_topic,
    decode,
    encode,
    events_topic,
)
from tests.fakes.tickets import ticket
from tests.integration.collector_helpers import (
    T0,
    batch,
    birth,
    death,
    heartbeat,
    incident_opened,
    state_change,
)
from tests.integration.store_params import STORES, open_store_param
from tests.integration.ticketing_helpers import FAST, book, contract, hook, sink_config
from tests.waiting import async_wait_until

__all__ = ["hook"]  # the shared webhook-receiver fixture (ticketing_helpers)

SITE = "plant1"
_names = itertools.count(1)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Both stores run the same rules (the SQL is written once)."""
    yield from open_store_param(request, tmp_path)


def _ingest(store: Store, max_seq_ahead: int = 10_000_000) -> Ingest:
    config = LivenessConfig(clock_skew_threshold=timedelta(days=3650), max_seq_ahead=max_seq_ahead)
    return Ingest(store, config, T0)


@pytest.fixture
def ingest(store: Store) -> Ingest:
    return _ingest(store)


def _send(ingest: Ingest, site: str, agent: str, events: list[Any], epoch: str = "e1") -> Ack:
    [out] = ingest.handle(events_topic(site, agent), encode(batch(site, agent, events, epoch=epoch)), T0)
    return decode(Ack, out.payload)


def _born(ingest: Ingest, site: str, agent: str, **kw: Any) -> None:
    ingest.handle(birth_topic(site, agent), encode(birth(site, agent, **kw)), T0)


def _reasons(store: Store) -> list[str]:
    return [d.reason for d in store.dead_letters()]


def _incident(store: Store, incident: str) -> dict[str, Any]:
    [row] = [r for r in store.table_rows("incidents") if r["id"] == incident]
    return row


# ---------------------------------------------------------------- 9.1 incidents belong to their agent


def test_another_agent_cannot_resolve_raise_or_reclassify_an_incident(ingest, store):
    _born(ingest, SITE, "a1")
    _born(ingest, SITE, "a2")
    _send(ingest, SITE, "a1", [incident_opened(1, T0)])
    forged = [
        IncidentResolvedEvent(seq=1, ts=T0, body=IncidentResolvedBody(incident="inc-1", at=T0 + 10)),
        IncidentUpdatedEvent(
            seq=2, ts=T0,
            body=IncidentUpdatedBody(incident="inc-1", severity=Severity.S4, state=State.DEGRADED, reason="x", at=T0),
        ),
        replace(incident_opened(3, T0 + 5),
                body=replace(incident_opened(3, T0).body, kind="site_link", targets=["plc-1"])),
    ]  # fmt: skip
    assert _send(ingest, SITE, "a2", forged) == Ack(epoch="e1", through=3)  # refused, yet the ack moves on
    row = _incident(store, "inc-1")
    assert (row["site"], row["agent"], row["kind"], row["resolved_at"], row["opened_at"]) == (
        SITE, "a1", "target", None, T0,
    )  # fmt: skip
    assert [u["severity"] for u in store.table_rows("incident_updates")] == ["S1"]
    assert store.dead_letter_total() == 3
    assert all("incident inc-1 belongs to plant1/a1" in r for r in _reasons(store))
    assert store.dead_letter_counts() == {(SITE, "a2"): 3}


def test_an_agent_of_the_same_name_at_another_site_owns_nothing_here(ingest, store):
    _born(ingest, SITE, "a1")
    _born(ingest, "plant2", "a1")
    _send(ingest, SITE, "a1", [incident_opened(1, T0)])
    resolved = IncidentResolvedEvent(seq=1, ts=T0, body=IncidentResolvedBody(incident="inc-1", at=T0 + 10))
    assert _send(ingest, "plant2", "a1", [resolved]).through == 1
    assert _incident(store, "inc-1")["resolved_at"] is None
    assert _reasons(store) == ["event seq 1 (incident_resolved): incident inc-1 belongs to plant1/a1"]


def test_the_owner_resolves_its_own_incident_even_in_the_same_batch(ingest, store):
    _born(ingest, SITE, "a1")
    resolved = IncidentResolvedEvent(seq=2, ts=T0, body=IncidentResolvedBody(incident="inc-1", at=T0 + 10))
    assert _send(ingest, SITE, "a1", [incident_opened(1, T0), resolved]).through == 2
    assert _incident(store, "inc-1")["resolved_at"] == T0 + 10
    assert store.dead_letter_total() == 0


# ---------------------------------------------------------------- 9.1 targets and assets from the registry


def test_a_state_change_of_a_target_not_in_the_registry_is_refused(ingest, store):
    _born(ingest, SITE, "a1")
    foreign = state_change(1, T0)
    foreign = replace(foreign, body=replace(foreign.body, target="plc-9"))
    assert _send(ingest, SITE, "a1", [foreign, heartbeat(2, T0)]).through == 2
    assert store.state_changes(T0 - 1, T0 + 1) == []
    assert _reasons(store) == [
        "event seq 1 (state_change): target plc-9 is not in the registry of plant1/a1"
        " (no birth or imported target list names it)"
    ]


def test_an_agent_never_seen_born_changes_no_state(ingest, store):
    payload = encode(batch(SITE, "a1", [state_change(1, T0)]))
    assert ingest.handle(events_topic(SITE, "a1"), payload, T0) == []  # held for its birth: not acked
    assert ingest.release_expired(T0 + BIRTH_WAIT_MS) == []  # still waiting
    assert store.table_rows("events") == [] and store.dead_letter_total() == 0
    [out] = ingest.release_expired(T0 + BIRTH_WAIT_MS + 1)  # no birth came: judged without one
    assert decode(Ack, out.payload).through == 1
    assert store.state_changes(T0 - 1, T0 + 1) == [] and store.dead_letter_total() == 1
    assert store.table_rows("held_batches") == []


def test_the_asset_comes_from_the_registry_not_from_the_event(ingest, store):
    _born(ingest, SITE, "a1")  # plc-1 belongs to line3-plc
    change = state_change(1, T0)
    change = replace(change, body=replace(change.body, asset="line9-plc"))
    opened = incident_opened(2, T0)
    opened = replace(opened, body=replace(opened.body, asset="line9-plc"))
    found = ChangeDetectedBody(target="plc-1", asset="line9-plc", what="firmware", old="1", new="2", at=T0)
    detected = ChangeDetectedEvent(seq=3, ts=T0, body=found)
    assert _send(ingest, SITE, "a1", [change, opened, detected]).through == 3
    assert [c.asset for c in store.state_changes(T0 - 1, T0 + 1)] == ["line3-plc"]
    assert _incident(store, "inc-1")["asset"] == "line3-plc"
    assert [c.asset for c in store.changes(T0 - 1, T0 + 1)] == ["line3-plc"]
    assert store.dead_letter_total() == 0


def test_incidents_must_name_registered_targets(ingest, store):
    _born(ingest, SITE, "a1")
    body = incident_opened(1, T0).body
    unknown = IncidentOpenedEvent(seq=1, ts=T0, body=replace(body, target="plc-9", incident="i1"))
    no_target = IncidentOpenedEvent(seq=2, ts=T0, body=replace(body, target=None, incident="i2"))
    site_link = IncidentOpenedBody(
        incident="i3", kind="site_link", severity=Severity.S1, state=State.DOWN, reason="all down", opened_at=T0,
        targets=["plc-1", "plc-7"],
    )  # fmt: skip
    alien_asset = replace(site_link, incident="i4", targets=["plc-1"], asset="line9-plc")
    events = [unknown, no_target, IncidentOpenedEvent(seq=3, ts=T0, body=site_link),
              IncidentOpenedEvent(seq=4, ts=T0, body=alien_asset), heartbeat(5, T0)]  # fmt: skip
    assert _send(ingest, SITE, "a1", events).through == 5
    assert store.table_rows("incidents") == []
    reasons = _reasons(store)
    assert len(reasons) == 4
    assert "target plc-9 is not in the registry" in reasons[3] and "names no target" in reasons[2]
    assert "target plc-7 is not in the registry" in reasons[1] and "names asset line9-plc" in reasons[0]


def test_a_configuration_incident_must_name_a_registered_target(ingest, store):
    """The agent opens a configuration incident for one of its targets; one naming only an asset could name any."""
    _born(ingest, SITE, "a1")
    body = replace(incident_opened(1, T0).body, kind="configuration", severity=Severity.S3)
    alien = replace(body, incident="i1", target=None, asset="line9-plc")
    own = replace(body, incident="i2", asset="line9-plc")
    events = [IncidentOpenedEvent(seq=1, ts=T0, body=alien), IncidentOpenedEvent(seq=2, ts=T0, body=own)]
    assert _send(ingest, SITE, "a1", events).through == 2
    assert [(r["id"], r["asset"]) for r in store.table_rows("incidents")] == [("i2", "line3-plc")]
    [reason] = _reasons(store)
    assert "seq 1" in reason and "names no target" in reason


def test_a_refused_event_sent_again_is_counted_once(ingest, store):
    _born(ingest, SITE, "a1")
    foreign = state_change(1, T0)
    foreign = replace(foreign, body=replace(foreign.body, target="plc-9"))
    assert _send(ingest, SITE, "a1", [foreign]).through == 1
    assert _send(ingest, SITE, "a1", [foreign, heartbeat(2, T0)]).through == 2  # a resend after a lost ack
    assert store.dead_letter_total() == 1


def test_birth_and_death_naming_another_agent_are_dead_letters(ingest, store):
    ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a2")), T0)
    ingest.handle(birth_topic(SITE, "a1"), encode(birth("plant2", "a1")), T0)
    assert store.agents() == [] and store.registry() == []
    _born(ingest, SITE, "a2")
    ingest.handle(death_topic(SITE, "a1"), encode(death(SITE, "a2")), T0 + 1000)
    assert store.open_gaps() == []
    assert store.dead_letter_counts() == {(SITE, "a1"): 3}
    assert all("topic names plant1/a1" in r for r in _reasons(store))


# ---------------------------------------------------------------- 9.2 acks cover only what was received


def _gap(seq: int, lo: int, hi: int) -> GapEvent:
    body = GapBody(from_seq=lo, to_seq=hi, count=max(hi - lo + 1, 0), reason="outbox full")
    return GapEvent(seq=seq, ts=T0, body=body)


def test_a_gap_declares_only_seqs_below_its_own(ingest, store):
    _born(ingest, SITE, "a1")
    assert _send(ingest, SITE, "a1", [heartbeat(1, T0), _gap(2, 3, 500)]).through == 2  # not 500
    assert _send(ingest, SITE, "a1", [_gap(3, 2, 1)]).through == 3
    assert store.table_rows("lost_ranges") == []
    reasons = _reasons(store)
    assert "gap from_seq 2 is after its to_seq 1" in reasons[0]
    assert "gap declares seqs up to 500, not below its own seq 2" in reasons[1]
    assert _send(ingest, SITE, "a1", [heartbeat(4, T0), _gap(9, 5, 8)]).through == 9  # a true gap still counts


def test_a_far_future_seq_is_dead_lettered_and_the_real_event_is_stored_later(store):
    ingest = _ingest(store, max_seq_ahead=100)
    _born(ingest, SITE, "a1")
    forged = state_change(150, T0 + 1)
    assert _send(ingest, SITE, "a1", [heartbeat(1, T0), forged]).through == 1
    assert _reasons(store) == ["event seq 150 (state_change): more than 100 beyond the epoch's ack (0): implausible"]
    assert store.state_changes(T0 - 1, T0 + 10) == []
    assert _send(ingest, SITE, "a1", [heartbeat(s, T0 + s) for s in range(2, 101)]).through == 100
    real = [heartbeat(s, T0 + s) for s in range(101, 150)] + [state_change(150, T0 + 2)]
    assert _send(ingest, SITE, "a1", real).through == 150
    [change] = store.state_changes(T0 - 1, T0 + 10)
    assert change.at == T0 + 2  # the real one, not a duplicate of the forged one
    assert store.dead_letter_total() == 1


def test_the_plausible_range_starts_at_the_floor_a_birth_declares(store):
    ingest = _ingest(store, max_seq_ahead=100)
    _born(ingest, SITE, "a1", epoch="e2", acked_through=5_000)  # a new epoch keeps its seqs (restored outbox)
    assert _send(ingest, SITE, "a1", [heartbeat(5_001, T0), heartbeat(5_090, T0)], epoch="e2").through == 5_001
    assert store.dead_letter_total() == 0


def test_a_birth_cannot_push_a_known_epochs_ack_far_beyond_what_was_received(store):
    ingest = _ingest(store, max_seq_ahead=100)
    _born(ingest, SITE, "a1")
    assert _send(ingest, SITE, "a1", [heartbeat(1, T0)]).through == 1
    out = ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1", acked_through=10**12)), T0)
    assert decode(Ack, out[0].payload).through == 1
    assert _reasons(store) == ["birth acked_through 1000000000000: more than 100 beyond the epoch's ack (1), ignored"]
    assert store.agents()[0].boot == "b1"  # the birth itself is applied
    assert _send(ingest, SITE, "a1", [heartbeat(2, T0)]).through == 2
    out = ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1", acked_through=60)), T0)
    assert decode(Ack, out[0].payload).through == 60  # a plausible floor still counts


# ---------------------------------------------------------------- over the broker


@pytest.mark.broker
async def test_over_the_broker_a_forged_resolution_is_refused_and_both_agents_go_on(mosquitto, tmp_path):
    config = CollectorConfig(
        collector=CollectorSection(id=f"own{next(_names)}", data_dir=tmp_path),
        broker=BrokerConfig(host=mosquitto.host, port=mosquitto.port),
    )
    svc = CollectorService(config, SqliteStore(tmp_path / "collector.db"))
    svc.store.migrate()
    await svc.start()
    client = MqttClient(BrokerConfig(host=mosquitto.host, port=mosquitto.port), client_id=f"own-agents{next(_names)}")
    acks: dict[str, list[Ack]] = {"a1": [], "a2": []}

    def on_ack(topic: str, payload: bytes) -> None:
        acks[topic.split("/")[3]].append(decode(Ack, payload))

    for name in acks:
        client.subscribe(ack_topic(SITE, name), on_ack)
    await client.start()
    try:
        await async_wait_until(lambda: svc.mqtt.connected and client.connected, what="connected")
        for name in acks:
            await client.publish(birth_topic(SITE, name), encode(birth(SITE, name)))
        await client.publish(events_topic(SITE, "a1"), encode(batch(SITE, "a1", [incident_opened(1, T0)])))
        await async_wait_until(lambda: acks["a1"] and acks["a1"][-1].through == 1, what="a1 acked")
        resolved = IncidentResolvedEvent(seq=1, ts=T0, body=IncidentResolvedBody(incident="inc-1", at=T0 + 10))
        await client.publish(events_topic(SITE, "a2"), encode(batch(SITE, "a2", [resolved, heartbeat(2, T0)])))
        await async_wait_until(lambda: acks["a2"] and acks["a2"][-1].through == 2, what="a2 acked past the refusal")
        assert _incident(svc.store, "inc-1")["resolved_at"] is None
        assert svc.store.dead_letter_counts() == {(SITE, "a2"): 1}
    finally:
        await client.stop()
        await svc.stop()
        svc.store.close()


# ---------------------------------------------------------------- resolution verification at the asset's own site


async def test_a_resolution_claim_is_verified_against_the_assets_own_site(ingest, store, hook):
    """Two plants each have a `line3-plc`: plant 2's outage says nothing about plant 1's PLC."""
    _born(ingest, SITE, "a1")
    _born(ingest, "plant2", "b1")
    restored = state_change(3, T0 + 60_000, to=State.UP, frm=State.DOWN)
    _send(ingest, SITE, "a1", [state_change(1, T0), incident_opened(2, T0, incident="inc-p1"), restored])
    _send(ingest, "plant2", "b1", [state_change(1, T0 + 90_000)])  # later, plant 2's line3-plc goes DOWN
    c = contract("acme-mes-2026", "acme", ["line3-plc"], sink_config("webhook", hook.url))
    lifecycle = Lifecycle(store, book(c), lambda: T0 + 120_000, "here")
    sink = make_sink(WebhookSink.model_validate(sink_config("webhook", hook.url)))
    dispatcher = Dispatcher(store, {"acme-mes-2026": sink}, clock=lambda: T0 + 90_000, policy=FAST,
                            on_recorded=lifecycle.on_recorded)  # fmt: skip
    dispatcher.request_create(ticket("inc-p1", severity=Severity.S1))
    await dispatcher.run_once()
    await sink.aclose()
    view = lifecycle.claim_resolution("inc-p1", "acme-mes-2026", "rebooted", "vendor:acme", "10.0.0.9")
    assert view.phase == "closed"


# ---------------------------------------------------------------- history imports: the same rules


def test_a_target_list_is_imported_once_and_never_overwrites_a_later_one(store):
    def targets(at: int, asset: str) -> bytes:
        listed = [{"id": "plc-1", "kind": "opcua", "asset": asset, "criticality": "critical"}]
        return json.dumps({"record": "targets", "site": SITE, "agent": "a1", "at": at, "targets": listed}).encode()

    assert import_lines(store, [targets(T0, "line3-plc")], T0).imported == 1
    again = import_lines(store, [targets(T0, "line3-plc"), targets(T0 - 1, "old-plc")], T0)
    assert (again.imported, again.duplicates) == (0, 2)
    assert [(t.target, t.asset) for t in store.registry()] == [("plc-1", "line3-plc")]
    # ...and live events of that agent take their assets from it, once they are no longer held for a birth
    ingest = _ingest(store)
    assert ingest.handle(events_topic(SITE, "a1"), encode(batch(SITE, "a1", [state_change(1, T0)])), T0) == []
    [out] = ingest.release_expired(T0 + BIRTH_WAIT_MS + 1)
    assert decode(Ack, out.payload).through == 1
    assert [c.asset for c in store.state_changes(T0 - 1, T0 + 1)] == ["line3-plc"]


def test_imported_events_may_not_touch_another_agents_incident(store):
    body = IncidentOpenedBody(
        incident="inc-9", target="plc-1", severity=Severity.S1, state=State.DOWN, reason="x", opened_at=T0
    )
    opened = IncidentOpenedEvent(seq=1, ts=T0, body=body)
    resolved = IncidentResolvedEvent(seq=1, ts=T0, body=IncidentResolvedBody(incident="inc-9", at=T0 + 1))
    lines = [{"site": SITE, "agent": "a1", **to_builtins(opened)},
             {"site": SITE, "agent": "a2", **to_builtins(resolved)}]  # fmt: skip
    result = import_lines(store, [json.dumps(line).encode() for line in lines], T0)
    assert [(b.number, b.reason) for b in result.bad] == [(2, "incident_resolved: incident inc-9 belongs to plant1/a1")]
    [row] = store.table_rows("incidents")
    assert row["resolved_at"] is None
