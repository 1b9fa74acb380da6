"""Opt-in Prometheus `/metrics` for the agent, on 127.0.0.1 only (`[agent] metrics_port`).

Imported only when the port is set, so an agent without it never loads prometheus_client. The server is
a few lines of asyncio on the agent's own event loop: a scrape reads the outbox and the forwarder on the
same thread as everything else, with no thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from agent.probes.base import ProbeResult
from linewarden.cert_metrics import CertificateFigures
from linewarden.domain import State

if TYPE_CHECKING:
    from agent.runtime import Agent

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_MAX_REQUEST = 8192


class AgentMetrics:
    def __init__(self, agent: Agent, clock_ms: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.polls = Counter("linewarden_agent_polls", "probe results, by target kind", ["kind"],
                             registry=self.registry)  # fmt: skip
        self.failures = Counter("linewarden_agent_poll_failures", "probe results other than UP, by target kind",
                                ["kind"], registry=self.registry)  # fmt: skip
        self.latency = Histogram("linewarden_agent_probe_latency_seconds", "probe latency, by target kind", ["kind"],
                                 buckets=_BUCKETS, registry=self.registry)  # fmt: skip
        self.registry.register(_LinkFigures(agent, clock_ms))
        self.registry.register(CertificateFigures("linewarden_agent", agent.forwarder.certificates))
        agent.on_result = self.observe

    def observe(self, kind: str, result: ProbeResult) -> None:
        self.polls.labels(kind=kind).inc()
        if result.state != State.UP:
            self.failures.labels(kind=kind).inc()
        if result.latency_ms is not None:
            self.latency.labels(kind=kind).observe(result.latency_ms / 1000)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _LinkFigures(Collector):
    def __init__(self, agent: Agent, clock_ms: Callable[[], int]) -> None:
        self.agent = agent
        self.clock_ms = clock_ms

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        stats = self.agent.outbox.stats()
        status = self.agent.forwarder.status()
        now_ms = self.clock_ms()
        age = 0.0 if stats.oldest_ts is None else max(0.0, (now_ms - stats.oldest_ts) / 1000)
        online = -1.0 if status.collector_online is None else float(status.collector_online)
        yield GaugeMetricFamily("linewarden_agent_outbox_depth", "events not yet acknowledged", value=stats.depth)
        yield GaugeMetricFamily("linewarden_agent_outbox_oldest_unacked_age_seconds",
                                "age of the oldest unacknowledged event", value=age)  # fmt: skip
        yield GaugeMetricFamily("linewarden_agent_broker_connected", "1 while connected to the broker",
                                value=float(status.connected))  # fmt: skip
        yield GaugeMetricFamily("linewarden_agent_collector_online", "collector state: 1 online, 0 offline, -1 unknown",
                                value=online)  # fmt: skip
        yield GaugeMetricFamily("linewarden_agent_batches_in_flight", "batches waiting for the broker's PUBACK",
                                value=status.in_flight)  # fmt: skip
        yield GaugeMetricFamily("linewarden_agent_last_ack_seq", "highest seq the collector acknowledged",
                                value=status.last_ack_seq)  # fmt: skip
        connects = self.agent.forwarder.connects
        yield CounterMetricFamily("linewarden_agent_broker_reconnects", "broker connections after the first",
                                  value=max(0, connects - 1))  # fmt: skip


class MetricsServer:
    """`GET /metrics` on 127.0.0.1:port; anything else answers 404."""

    def __init__(self, metrics: AgentMetrics, port: int) -> None:
        self.metrics = metrics
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, LOOPBACK, self.port)
        bound: int = self._server.sockets[0].getsockname()[1]
        log.info("metrics on http://%s:%d/metrics", LOOPBACK, bound)
        return bound

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            request = head[:_MAX_REQUEST].split(b"\r\n", 1)[0].split()
            if len(request) >= 2 and request[0] == b"GET" and request[1].split(b"?")[0] == b"/metrics":
                body, status, kind = self.metrics.exposition(), b"200 OK", CONTENT_TYPE_LATEST.encode()
            else:
                body, status, kind = b"not found\n", b"404 Not Found", b"text/plain"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: " + kind + b"\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)  # fmt: skip
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a client that sends nothing useful gets nothing
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
