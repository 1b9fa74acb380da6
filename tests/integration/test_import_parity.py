"""Imported history gives the same figures as the live path.

One plant's history, every record kind the import accepts: delivered live (births, batches and a death-free
silence through `Ingest.handle` with real wire payloads, the ticket steps through the dispatcher and the
lifecycle as the API drives them, the maintenance window through the store call the CLI and API make), and as
one JSON Lines import. The two stores give the same report, figure by figure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from msgspec import to_builtins

from collector.importer import import_lines
from collector.ingest import Ingest
from collector.liveness import REASON_MISSED
from collector.reporting import reports
from collector.store.base import Store
from collector.store.sqlite import SqliteStore
from collector.ticketing.dispatch import Dispatcher
from collector.ticketing.lifecycle import Lifecycle
from collector.ticketing.registry import make_sink
from linewarden.book import ContractBook
from linewarden.config.collector import LivenessConfig
from linewarden.config.contract import WebhookSink
from linewarden.domain import Criticality, ProbeKind, Severity, State
from linewarden.sla.periods import parse_month
from linewarden.wire import (
    Birth,
    ChangeDetectedBody,
    ChangeDetectedEvent,
    Event,
    GapBody,
    GapEvent,
    HeartbeatBody,
    HeartbeatEvent,
    IncidentOpenedBody,
    IncidentOpenedEvent,
    IncidentResolvedBody,
    IncidentResolvedEvent,
    IncidentUpdatedBody,
    IncidentUpdatedEvent,
    MaintenanceWindowWire,
    MetricsBody,
    MetricsEvent,
    StateChangeBody,
    StateChangeEvent,
    TargetInfo,
    birth_topic,
    build,
    encode,
    events_topic,
)
from tests.fakes.tickets import ticket
from tests.fakes.webhook import FakeWebhookReceiver
from tests.integration.collector_helpers import T0, batch
from tests.integration.ticketing_helpers import FAST, book, contract, hook, sink_config

__all__ = ["hook"]  # the shared webhook-receiver fixture (ticketing_helpers)

SITE, AGENT, EPOCH, BOOT = "plant1", "a1", "e1", "b1"
CONTRACT = "acme-mes-2026"
MONTH = "2026-05"
S = 1000  # ms
TARGETS = [
    TargetInfo(id="plc-1", kind=ProbeKind.OPCUA, asset="line3-plc", criticality=Criticality.CRITICAL),
    TargetInfo(id="mes-1", kind=ProbeKind.HTTP, asset="line3-mes", criticality=Criticality.HIGH),
]
GAP = (T0 + 300 * S, T0 + 3700 * S)  # the silence the live collector measures (asserted below)
WINDOW = MaintenanceWindowWire(
    id="mw-1", start=T0 + 7200 * S, end=T0 + 10_800 * S, assets=["line3-plc"], announced_at=T0,
    announced_by="acme", reason="firmware update",
)  # fmt: skip


def _change(seq: int, target: str, frm: State, to: State, at: int) -> StateChangeEvent:
    asset = {t.id: t.asset for t in TARGETS}[target]
    body = build(
        StateChangeBody, {"target": target, "asset": asset, "from": frm, "to": to, "reason": "probe", "at": at}
    )
    return StateChangeEvent(seq=seq, ts=at + 5 * S, body=body)


def _beat(seq: int, ts: int) -> HeartbeatEvent:
    return HeartbeatEvent(seq=seq, ts=ts, body=HeartbeatBody(interval_s=60, states={"plc-1": State.UP}))


# Three batches, as the agent sent them, each with the time the collector received it.
BATCHES: list[tuple[int, list[Event]]] = [
    (T0 + 310 * S, [
        _beat(1, T0 + 60 * S),
        _change(2, "plc-1", State.UP, State.DOWN, T0 + 100 * S),
        IncidentOpenedEvent(seq=3, ts=T0 + 100 * S, body=IncidentOpenedBody(
            incident="inc-1", target="plc-1", asset="line3-plc", criticality=Criticality.CRITICAL,
            severity=Severity.S2, state=State.DOWN, reason="no answer", in_production=False,
            opened_at=T0 + 100 * S, targets=["plc-1"])),
        MetricsEvent(seq=4, ts=T0 + 120 * S, body=MetricsBody(target="plc-1", minute=T0 + 60 * S, probes=12,
                                                                failures=3)),
        IncidentUpdatedEvent(seq=5, ts=T0 + 200 * S, body=IncidentUpdatedBody(
            incident="inc-1", severity=Severity.S1, state=State.DOWN, reason="production started",
            in_production=True, at=T0 + 200 * S)),
        ChangeDetectedEvent(seq=6, ts=T0 + 290 * S, body=ChangeDetectedBody(
            target="plc-1", asset="line3-plc", what="firmware", old="1.0", new="1.1", at=T0 + 290 * S)),
        _beat(7, T0 + 300 * S),
    ]),
    (T0 + 4000 * S, [
        _change(8, "plc-1", State.DOWN, State.UP, T0 + 3700 * S),
        IncidentResolvedEvent(seq=9, ts=T0 + 3700 * S, body=IncidentResolvedBody(incident="inc-1",
                                                                                  at=T0 + 3700 * S)),
        GapEvent(seq=11, ts=T0 + 3950 * S, body=GapBody(from_seq=10, to_seq=10, count=1, reason="outbox full",
                                                        dropped_types=["heartbeat"])),
        _beat(12, T0 + 3960 * S),
    ]),
    (T0 + 12_000 * S, [
        _change(13, "mes-1", State.UP, State.DEGRADED, T0 + 5000 * S),
        _change(14, "mes-1", State.DEGRADED, State.UP, T0 + 5600 * S),
        _change(15, "plc-1", State.UP, State.DOWN, T0 + 7300 * S),  # inside the maintenance window
        _change(16, "plc-1", State.DOWN, State.UP, T0 + 7500 * S),
        _beat(17, T0 + 11_900 * S),
    ]),
]  # fmt: skip

# The ticket steps: (when, what) as the vendor and the plant took them.
RAISED, ACKED, TRIAGED, PAUSED, RESUMED, CLAIMED, RCA = (
    T0 + 400 * S, T0 + 900 * S, T0 + 1000 * S, T0 + 1200 * S, T0 + 1800 * S, T0 + 4100 * S, T0 + 86_400 * S
)  # fmt: skip


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def _book(hook: FakeWebhookReceiver) -> ContractBook:
    uptime = [{"scope": "line3-plc", "target_pct": 99.9}, {"scope": "line3-mes", "target_pct": 99.0,
              "degraded_weight": 0.5}, {"scope": "critical", "target_pct": 99.5}]  # fmt: skip
    return book(contract(CONTRACT, "acme", ["line3-plc", "line3-mes"], sink_config("webhook", hook.url),
                         uptime=uptime, maintenance={"notice": "1h"}))  # fmt: skip


def _open(path: Path) -> SqliteStore:
    store = SqliteStore(path)
    store.migrate()
    return store


async def _live(store: Store, the_book: ContractBook, hook: FakeWebhookReceiver) -> None:
    ingest = Ingest(store, LivenessConfig(missed_heartbeats=3), watching_since=T0)
    born = Birth(agent=AGENT, site=SITE, epoch=EPOCH, boot=BOOT, ts=T0, version="1", config_hash="h",
                 targets=TARGETS)  # fmt: skip
    ingest.handle(birth_topic(SITE, AGENT), encode(born), T0)
    clock = Clock(T0)
    lifecycle = Lifecycle(store, the_book, clock, "10.0.0.9")
    sink = make_sink(WebhookSink.model_validate(sink_config("webhook", hook.url)))
    dispatcher = Dispatcher(store, {CONTRACT: sink}, clock=clock, policy=FAST, on_recorded=lifecycle.on_recorded)

    def deliver(index: int) -> None:
        received, events = BATCHES[index]
        ingest.handle(events_topic(SITE, AGENT), encode(batch(SITE, AGENT, events, epoch=EPOCH, boot=BOOT)), received)

    deliver(0)
    assert ingest.check_liveness(T0 + 600 * S)  # silent: a monitoring gap opens at the last heartbeat
    clock.now = RAISED
    dispatcher.request_create(ticket("inc-1", severity=Severity.S1, opened_at=T0 + 100 * S))
    await dispatcher.run_once()
    await sink.aclose()
    clock.now = ACKED
    lifecycle.acknowledge("inc-1", CONTRACT, "vendor:acme", "10.0.0.7")
    clock.now = TRIAGED
    lifecycle.triage("inc-1", CONTRACT, Severity.S2, "vendor:acme", "10.0.0.7")
    clock.now = PAUSED
    lifecycle.pause("inc-1", CONTRACT, "waiting for the plant", "plant:it", "10.0.0.8")
    clock.now = RESUMED
    lifecycle.resume("inc-1", CONTRACT, "plant:it", "10.0.0.8")
    deliver(1)  # the restoration ends the silence
    clock.now = CLAIMED
    assert (
        lifecycle.claim_resolution("inc-1", CONTRACT, "replaced the PSU", "vendor:acme", "10.0.0.7").phase == "closed"
    )
    clock.now = RCA
    lifecycle.receive_rca("inc-1", CONTRACT, "https://acme.example/rca/1", None, "vendor:acme", "10.0.0.7")
    with store.transaction() as tx:  # as `maintenance add` and POST /maintenance-windows record it
        tx.add_maintenance_window(SITE, WINDOW, None, recorded_at=WINDOW.announced_at)
    deliver(2)
    assert [(g.start_at, g.end_at, g.reason) for g in store.gaps(0, 2**62)] == [(*GAP, REASON_MISSED)]


def _import_file(with_targets: bool = True) -> list[dict[str, Any]]:
    origin = {"site": SITE, "agent": AGENT, "epoch": EPOCH, "boot": BOOT}
    lines: list[dict[str, Any]] = [{**origin, **to_builtins(e)} for _, events in BATCHES for e in events]
    lines += [
        {"record": "monitoring_gap", "site": SITE, "agent": AGENT, "start": GAP[0], "end": GAP[1],
         "reason": REASON_MISSED},
        {"record": "maintenance_window", "site": SITE,
         **{k: v for k, v in to_builtins(WINDOW).items() if k != "back_dated"}},
        {"record": "ticket_raised", "incident": "inc-1", "at": RAISED, "actor": "collector"},
        {"record": "ticket_acknowledged", "incident": "inc-1", "at": ACKED, "actor": "acme"},
        {"record": "ticket_triaged", "incident": "inc-1", "at": TRIAGED, "actor": "acme", "severity": "S2"},
        {"record": "ticket_paused", "incident": "inc-1", "at": PAUSED, "actor": "plant-it"},
        {"record": "ticket_resumed", "incident": "inc-1", "at": RESUMED, "actor": "plant-it"},
        {"record": "resolution_claimed", "incident": "inc-1", "at": CLAIMED, "actor": "acme"},
        {"record": "rca_received", "incident": "inc-1", "at": RCA, "actor": "acme"},
    ]  # fmt: skip
    if with_targets:  # last in the file: target lists apply first whatever the order
        targets = [to_builtins(t) for t in TARGETS]
        lines.append({"record": "targets", "site": SITE, "agent": AGENT, "at": T0, "targets": targets})
    return lines


def _imported(path: Path, lines: list[dict[str, Any]]) -> SqliteStore:
    store = _open(path)
    result = import_lines(store, [json.dumps(line).encode() for line in lines], T0 + 100_000 * S)
    assert (result.bad, result.imported) == ([], len(lines))
    return store


def _report(store: Store, the_book: ContractBook) -> dict[str, Any]:
    period = parse_month(MONTH, "Europe/Berlin")
    [report] = reports(store, the_book, MONTH, as_of_ms=period.end_ms)
    out = report.to_dict()
    # An imported window's announcement time comes from the file, not from the collector's clock, so it is
    # marked back-dated; that marks provenance and changes no figure.
    for section in ("exclusions", "short_notice"):
        for row in out[section]:
            row.pop("back_dated", None)
    return out


def _gaps(report: dict[str, Any], scope: str) -> list[tuple[int, int]]:
    """The line's monitoring gaps once the agent was watching (the time before its first state is unobserved)."""
    return [(x["start_ms"], x["end_ms"]) for x in report["exclusions"]
            if x["scope"] == scope and x["reason"] == "monitoring_gap" and x["start_ms"] >= T0]  # fmt: skip


async def test_the_same_history_live_and_imported_gives_the_same_report(tmp_path, hook):
    the_book = _book(hook)
    live = _open(tmp_path / "live.db")
    await _live(live, the_book, hook)
    imported = _imported(tmp_path / "imported.db", _import_file())

    expected = _report(live, the_book)
    got = _report(imported, the_book)
    assert got["uptime"] == expected["uptime"]
    assert got["incidents"] == expected["incidents"]
    assert got["exclusions"] == expected["exclusions"]
    assert got == expected
    # The history is not trivial: the gap, the window, the outage, the change and the ticket all count.
    plc = next(line for line in expected["uptime"] if line["scope"] == "line3-plc")
    assert (plc["maintenance_ms"], plc["down_ms"]) == (WINDOW.end - WINDOW.start, 200 * S)
    assert _gaps(expected, "line3-plc") == [GAP]
    assert [line["scope"] for line in expected["uptime"] if line["kind"] == "asset_class"] == ["critical"]
    [incident] = expected["incidents"]
    assert (incident["notified_ms"], incident["acknowledged_ms"], incident["vendor_severity"]) == (
        RAISED, ACKED, "S2",
    )  # fmt: skip
    assert len(expected["unapproved_changes"]) == 1
    live.close()
    imported.close()


async def test_an_agent_without_a_target_list_has_the_assets_its_own_records_name(tmp_path, hook):
    """An old tool's export has no target list: the gap still covers the assets the agent's events name."""
    the_book = _book(hook)
    live = _open(tmp_path / "live.db")
    await _live(live, the_book, hook)
    imported = _imported(tmp_path / "imported.db", _import_file(with_targets=False))
    by_scope = {line["scope"]: line for line in _report(imported, the_book)["uptime"]}
    expected = {line["scope"]: line for line in _report(live, the_book)["uptime"]}
    assert by_scope["line3-plc"] == expected["line3-plc"]
    assert by_scope["line3-mes"] == expected["line3-mes"]
    assert _gaps(_report(imported, the_book), "line3-plc") == [GAP]
    live.close()
    imported.close()
