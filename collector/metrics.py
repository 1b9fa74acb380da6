"""The collector's Prometheus metrics, `/metrics`, `/healthz` and `/readyz` (served by the API app).

Counters move as the collector works (messages, events stored, dead letters by reason, sink calls);
figures that live in the store (per-agent last seen and ack lag, dispatch states, timer lag) are read
when Prometheus scrapes, on the collector's event loop like every other store access, and the time
that read takes is itself reported as the store's read latency. Each service has its own registry,
so two collectors in one process (tests) do not share figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from collector import liveness
from collector.store.base import Store
from collector.ticketing.base import Ticket, TicketSink, VendorRef
from linewarden.cert_metrics import CertificateFigures
from linewarden.certs import CertInfo
from linewarden.errors import TicketRejected

Clock = Callable[[], int]
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SINK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def dead_letter_reason(text: str) -> str:
    """A bounded label for a dead letter's free-text reason (the full text is in the store)."""
    if text.startswith(("not a linewarden agent topic", "bad site or agent id", "not a topic the collector")):
        return "topic"
    if text.startswith("payload names"):
        return "sender"
    if text.startswith("birth acked_through"):
        return "ack_floor"
    if "implausible" in text:
        return "implausible_seq"
    return "payload"


class CollectorMetrics:
    def __init__(
        self, store: Store, clock: Clock, broker_connected: Callable[[], bool],
        certificates: Callable[[], list[CertInfo]] = list,
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter("linewarden_collector_messages", "MQTT messages handled, by topic kind", ["kind"],
                                registry=r)  # fmt: skip
        self.events_stored = Counter("linewarden_collector_events_stored", "agent events newly stored", registry=r)
        self.ingest_failures = Counter(
            "linewarden_collector_ingest_failures", "messages the store failed on (not acked: resent)", registry=r
        )
        self.dead_letters = Counter("linewarden_collector_dead_letters", "messages dead-lettered, by reason",
                                    ["reason"], registry=r)  # fmt: skip
        self.held_batches = Counter(
            "linewarden_collector_held_batches",
            "event batches that came before their boot's birth, by outcome: held, released (the birth came),"
            " expired (no birth within the birth wait), over_limit (not held)",
            ["outcome"],
            registry=r,
        )
        self.store_seconds = Histogram("linewarden_collector_store_seconds", "time to store one message",
                                       buckets=_LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.sink_seconds = Histogram("linewarden_collector_sink_request_seconds", "vendor ticket API calls",
                                      ["sink", "action"], buckets=_SINK_BUCKETS, registry=r)  # fmt: skip
        self.sink_errors = Counter("linewarden_collector_sink_errors", "failed vendor ticket API calls",
                                   ["sink", "action", "kind"], registry=r)  # fmt: skip
        self._state = _StoreFigures(store, clock, broker_connected)
        r.register(self._state)
        r.register(CertificateFigures("linewarden_collector", certificates))

    def observe_message(self, topic: str, seconds: float, stored: int, failed: bool) -> None:
        self.messages.labels(kind=topic.rsplit("/", 1)[-1]).inc()
        self.store_seconds.observe(seconds)
        self.events_stored.inc(stored)
        if failed:
            self.ingest_failures.inc()

    def dead_letter(self, reason: str) -> None:
        self.dead_letters.labels(reason=dead_letter_reason(reason)).inc()

    def held_batch(self, outcome: str) -> None:
        self.held_batches.labels(outcome=outcome).inc()

    def metered(self, sink: TicketSink) -> TicketSink:
        return MeteredSink(sink, self)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _StoreFigures(Collector):
    def __init__(self, store: Store, clock: Clock, broker_connected: Callable[[], bool]) -> None:
        self.store = store
        self.clock = clock
        self.broker_connected = broker_connected

    def collect(self) -> Iterator[GaugeMetricFamily]:
        started = time.perf_counter()
        now = self.clock()
        with self.store.reader() as sql:
            agents = sql.query(
                "SELECT a.site, a.agent, a.last_seen, a.last_heartbeat, a.outbox_depth, a.oldest_unacked_at,"
                " COALESCE(k.through, 0) AS through,"
                " (SELECT MAX(e.seq) FROM events e WHERE e.site = a.site AND e.agent = a.agent"
                "  AND e.epoch = a.epoch) AS top"
                " FROM agents a LEFT JOIN acks k ON k.site = a.site AND k.agent = a.agent AND k.epoch = a.epoch"
            )
            dispatches = sql.query("SELECT state, COUNT(*) AS n FROM ticket_dispatches GROUP BY state")
            due = sql.query(
                "SELECT MIN(due_at) AS due FROM ticket_timers WHERE fired_at IS NULL AND cancelled_at IS NULL"
            )
            dead = sql.query("SELECT COUNT(*) AS n FROM dead_letters")
            held = sql.query("SELECT COUNT(*) AS n FROM held_batches")
        read_s = time.perf_counter() - started

        seen = GaugeMetricFamily("linewarden_agent_last_seen_timestamp_seconds", "when the agent was last heard",
                                 labels=["site", "agent"])  # fmt: skip
        lag = GaugeMetricFamily("linewarden_agent_ack_lag_events", "events stored for the agent's epoch beyond the ack",
                                labels=["site", "agent"])  # fmt: skip
        depth = GaugeMetricFamily("linewarden_agent_reported_outbox_depth",
                                  "events the agent's outbox had not got acknowledged, as its latest heartbeat said",
                                  labels=["site", "agent"])  # fmt: skip
        oldest = GaugeMetricFamily("linewarden_agent_reported_outbox_oldest_age_seconds",
                                   "age of the oldest of them at that heartbeat (0: none)",
                                   labels=["site", "agent"])  # fmt: skip
        for a in agents:
            seen.add_metric([a["site"], a["agent"]], a["last_seen"] / 1000)
            lag.add_metric([a["site"], a["agent"]], max(0, (a["top"] or 0) - a["through"]))
            if a["outbox_depth"] is not None:  # agents older than the heartbeat's outbox figures: no series
                age = liveness.unacked_age_ms(a["last_heartbeat"], a["oldest_unacked_at"]) or 0
                depth.add_metric([a["site"], a["agent"]], a["outbox_depth"])
                oldest.add_metric([a["site"], a["agent"]], age / 1000)
        yield seen
        yield lag
        yield depth
        yield oldest
        states = GaugeMetricFamily("linewarden_collector_dispatches", "ticket dispatch outbox rows by state",
                                   labels=["state"])  # fmt: skip
        counts = {row["state"]: row["n"] for row in dispatches}
        for state in ("pending", "in_flight", "done", "failed"):
            states.add_metric([state], counts.get(state, 0))
        yield states
        oldest_due = due[0]["due"] if due else None
        timer_lag = 0.0 if oldest_due is None else max(0.0, (now - oldest_due) / 1000)
        yield GaugeMetricFamily("linewarden_collector_timer_lag_seconds",
                                "how far the oldest unfired timer is past due", value=timer_lag)  # fmt: skip
        yield GaugeMetricFamily("linewarden_collector_dead_letters_stored", "dead letters in the store",
                                value=dead[0]["n"])  # fmt: skip
        yield GaugeMetricFamily("linewarden_collector_held_batches_stored",
                                "event batches held in the store for their boot's birth",
                                value=held[0]["n"])  # fmt: skip
        yield GaugeMetricFamily("linewarden_collector_broker_connected", "1 while connected to the broker",
                                value=1.0 if self.broker_connected() else 0.0)  # fmt: skip
        yield GaugeMetricFamily("linewarden_collector_store_read_seconds", "time this scrape's store reads took",
                                value=read_s)  # fmt: skip


class MeteredSink(TicketSink):
    """A sink whose calls are timed and whose failures are counted (retryable `error` or `rejected`)."""

    def __init__(self, inner: TicketSink, metrics: CollectorMetrics) -> None:
        self.inner = inner
        self.kind = inner.kind  # type: ignore[misc]  # per instance: the wrapped sink's kind
        self._metrics = metrics

    async def _call(self, action: str, call: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return await call()
        except TicketRejected:
            self._metrics.sink_errors.labels(sink=self.kind, action=action, kind="rejected").inc()
            raise
        except Exception:
            self._metrics.sink_errors.labels(sink=self.kind, action=action, kind="error").inc()
            raise
        finally:
            self._metrics.sink_seconds.labels(sink=self.kind, action=action).observe(time.perf_counter() - started)

    async def find(self, idempotency_key: str) -> VendorRef | None:
        found: VendorRef | None = await self._call("find", lambda: self.inner.find(idempotency_key))
        return found

    async def create(self, ticket: Ticket) -> VendorRef:
        ref: VendorRef = await self._call("create", lambda: self.inner.create(ticket))
        return ref

    async def update(self, ref: VendorRef, ticket: Ticket) -> None:
        await self._call("update", lambda: self.inner.update(ref, ticket))

    async def comment(self, ref: VendorRef, ticket: Ticket, text: str) -> None:
        await self._call("comment", lambda: self.inner.comment(ref, ticket, text))

    async def resolve(self, ref: VendorRef, ticket: Ticket, note: str) -> None:
        await self._call("resolve", lambda: self.inner.resolve(ref, ticket, note))

    async def aclose(self) -> None:
        await self.inner.aclose()


def add_ops_routes(app: FastAPI, metrics: CollectorMetrics, store: Store, broker_connected: Callable[[], bool]) -> None:
    """`/metrics` (Prometheus text format), `/healthz` (the process answers), `/readyz` (store and broker).

    Put first among the app's routes, so that nothing mounted at `/` (the console) hides them."""
    before = len(app.router.routes)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(response: Response) -> dict[str, Any]:
        checks = {"store": _store_ok(store), "broker": broker_connected()}
        ready = all(checks.values())
        response.status_code = 200 if ready else 503
        return {"status": "ready" if ready else "not ready", "checks": checks}

    routes = app.router.routes
    routes[:] = routes[before:] + routes[:before]


def _store_ok(store: Store) -> bool:
    try:
        with store.reader() as sql:
            sql.query("SELECT 1 AS one")
    except Exception:
        return False
    return True

