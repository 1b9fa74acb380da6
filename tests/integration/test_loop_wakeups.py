"""The collector's loops without a fast poll (collector/wakeup.py): each one's safety poll is an hour here, so
what happens below happens only because work written in this process woke the loop, or because the loop slept
until the next due time it read from the store. Real SQLite, real clock, a fake webhook vendor."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator

import pytest

from collector.audit import AuditLog
from collector.service import CollectorService, wall_clock_ms
from collector.store.base import Store
from collector.store.sqlite import SqliteStore
from collector.ticketing.base import TicketSink, VendorRef
from collector.ticketing.dispatch import Dispatch, Dispatcher, RetryPolicy
from collector.ticketing.lifecycle import Lifecycle
from collector.ticketing.registry import make_sink
from collector.ticketing.timers import Timers
from linewarden.config.base import BrokerConfig
from linewarden.config.collector import CollectorConfig, CollectorSection, LivenessConfig
from linewarden.config.contract import WebhookSink
from linewarden.mqtt import MqttClient
from linewarden.wire import birth_topic, encode
from tests.fakes.tickets import open_db, ticket
from tests.fakes.webhook import FakeWebhookReceiver
from tests.integration.collector_helpers import birth
from tests.integration.ticketing_helpers import book, contract, hook, sink_config
from tests.waiting import async_wait_until

__all__ = ["hook"]  # the shared webhook-receiver fixture (ticketing_helpers)

HOUR_S = 3600.0  # the safety poll: never reached in these tests
CONTRACT = "acme-mes-2026"
# Lease = 0.2 + 0.2 + 0.01 s + 1 s: a dead collector's claim runs out within the test.
SHORT = RetryPolicy(attempt_timeout_s=0.2, attempts=1, run_budget_s=0.2, wait_max_s=0.01)
_names = itertools.count(1)


@pytest.fixture
async def sink(hook: FakeWebhookReceiver) -> AsyncIterator[TicketSink]:
    made = make_sink(WebhookSink.model_validate(sink_config("webhook", hook.url)))
    yield made
    await made.aclose()


@contextlib.asynccontextmanager
async def running(loop: asyncio.Task[None] | None, stop: asyncio.Event) -> AsyncIterator[None]:
    try:
        yield
    finally:
        stop.set()
        if loop is not None:
            await asyncio.wait_for(loop, 10)


class Rounds(Dispatcher):
    """Counts the dispatcher's idle rounds, so a test knows the loop has gone to sleep."""

    idle = 0

    def next_due(self) -> int | None:
        self.idle += 1
        return super().next_due()


class Crash(BaseException):
    """Stands for the collector being killed: not an error any handler may catch."""


class CrashBeforeRecord(Dispatcher):
    """The collector is killed between the vendor's answer and the record: the claim stays in flight."""

    def _record(self, row: Dispatch, ref: VendorRef | None) -> None:
        raise Crash


async def test_a_step_requested_from_another_thread_wakes_the_sleeping_dispatcher(tmp_path, hook, sink):
    store = open_db(tmp_path / "c.db")
    dispatcher = Rounds(store, {CONTRACT: sink}, policy=SHORT, origin="here")
    stop = asyncio.Event()
    loop = asyncio.create_task(dispatcher.run(stop, HOUR_S))
    async with running(loop, stop):
        await async_wait_until(lambda: dispatcher.idle >= 1, what="the dispatcher idle, sleeping")
        assert await asyncio.to_thread(dispatcher.request_create, ticket("inc-w"))  # as an API worker does
        await async_wait_until(lambda: "inc-w" in hook.tickets, what="the ticket at the vendor")
    store.close()


async def test_the_dispatcher_sleeps_until_a_dead_collectors_lease_ends_and_takes_the_step_over(
    tmp_path, hook, sink
):
    store = open_db(tmp_path / "c.db")
    dead = CrashBeforeRecord(store, {CONTRACT: sink}, policy=SHORT, origin="here", worker="c1")
    dead.request_create(ticket("inc-l"))
    with pytest.raises(Crash):
        await dead.run_once()
    survivor = Dispatcher(store, {CONTRACT: sink}, policy=SHORT, origin="here", worker="c2")
    assert await survivor.run_once() == 0  # the claim holds until its lease ends
    stop = asyncio.Event()
    async with running(asyncio.create_task(survivor.run(stop, HOUR_S)), stop):
        await async_wait_until(lambda: [d.state for d in survivor.dispatches("inc-l", CONTRACT)] == ["done"],
                               what="the create taken over once the lease ended")
    assert len(hook.tickets) == 1  # found by its idempotency key, not created twice
    store.close()


async def test_timers_scheduled_in_this_process_wake_the_timer_loop_which_fires_them_when_due(
    tmp_path, hook, sink
):
    escalation = [{"after": "1s", "severities": ["S2"], "notify": ["acme-duty-manager"]}]
    the_book = book(contract(CONTRACT, "acme", ["line3-plc"], sink_config("webhook", hook.url), escalation=escalation))
    store = open_db(tmp_path / "c.db")
    timers = Timers(store, the_book, wall_clock_ms, "here")
    lifecycle = Lifecycle(store, the_book, wall_clock_ms, "here", on_change=timers.wake)
    dispatcher = Dispatcher(store, {CONTRACT: sink}, policy=SHORT, origin="here", on_recorded=lifecycle.on_recorded)
    stop = asyncio.Event()
    loop = asyncio.create_task(timers.run(stop, HOUR_S))
    async with running(loop, stop):
        await asyncio.sleep(0)  # the loop's first round: nothing to fire, nothing due, asleep
        dispatcher.request_create(ticket("inc-t"))
        await dispatcher.run_once()  # the vendor has the ticket: its escalation timer is scheduled, 1 s ahead
        await async_wait_until(lambda: _actions(store, "ticket.escalated"), what="the escalation fired when due")
    store.close()


@pytest.mark.broker
async def test_a_birth_wakes_the_liveness_watch_which_opens_the_gap_at_the_agents_deadline(mosquitto, tmp_path):
    data = tmp_path / "data"
    config = CollectorConfig(
        collector=CollectorSection(id=f"c{next(_names)}", data_dir=data),
        broker=BrokerConfig(host=mosquitto.host, port=mosquitto.port),
        liveness=LivenessConfig(missed_heartbeats=1),
    )
    store = SqliteStore(data / "collector.db")
    store.migrate()
    svc = CollectorService(config, store, liveness_every_s=HOUR_S, ticket_poll_s=HOUR_S)
    agent = MqttClient(BrokerConfig(host=mosquitto.host, port=mosquitto.port), client_id="test-agent-l")
    try:
        await svc.start()
        await agent.start()
        await async_wait_until(lambda: svc.mqtt.connected and agent.connected, what="both connected")
        await agent.publish(birth_topic("plant1", "agent-l"),
                            encode(birth("plant1", "agent-l", heartbeat_interval_s=1)))
        # No heartbeat follows: silent 1 × 1 s after its birth was received.
        await async_wait_until(lambda: store.open_gaps(), what="the agent's monitoring gap")
    finally:
        await agent.stop()
        await svc.stop()
        store.close()


def _actions(store: Store, action: str) -> list[object]:
    return [e for e in AuditLog(store).entries() if e.action == action]
