"""PostgreSQL going away under the collector (a server restart, dropped connections): the store opens its
connection again, and ingest holds what it could not commit (no PUBACK, no ack), then resumes, losing nothing.

A TCP proxy in front of the local PostgreSQL drops every connection and refuses new ones, so no other user
of the database server is disturbed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from collector.api.app import create_app
from collector.service import CollectorService
from collector.store.postgres import PostgresStore
from collector.ticketing.lifecycle import Lifecycle
from collector.tokens import create_token
from linewarden.book import ContractBook
from linewarden.errors import StoreUnavailable
from linewarden.wire import birth_topic, encode, events_topic
from tests.integration.collector_helpers import T0, birth, heartbeats, state_change
from tests.integration.test_ingest import SITE, FakeAgent, _config
from tests.tcp_proxy import ThreadedTcpProxy
from tests.waiting import async_wait_until

pytestmark = pytest.mark.postgres


@pytest.fixture
def proxied(postgres_url: str) -> Iterator[tuple[ThreadedTcpProxy, str, str]]:
    """(proxy, URL through the proxy, schema of this test); the schema is dropped afterwards."""
    parts = urlsplit(postgres_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    proxy = ThreadedTcpProxy((host, port))
    proxy.start()
    netloc = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    url = urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{proxy.port}"))
    schema = f"lw_test_{uuid.uuid4().hex[:12]}"
    try:
        yield proxy, url, schema
    finally:
        proxy.close()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_store_connects_again_after_the_server_dropped_it(proxied) -> None:
    proxy, url, schema = proxied
    store = PostgresStore(url, schema=schema)
    store.migrate()
    try:
        with store.transaction() as tx:
            tx.insert_event("p1", "a1", "e1", "b1", state_change(1, T0), T0)
        proxy.stop()
        with pytest.raises(StoreUnavailable), store.transaction() as tx:
            tx.insert_event("p1", "a1", "e1", "b1", state_change(2, T0 + 1), T0)
        with pytest.raises(StoreUnavailable):
            store.table_rows("events")
        proxy.start()
        with store.transaction() as tx:
            tx.insert_event("p1", "a1", "e1", "b1", state_change(2, T0 + 1), T0)
        assert sorted(r["seq"] for r in store.table_rows("events")) == [1, 2], "the schema is set again"
        assert store.reconnects == 1
    finally:
        store.close()


def test_an_idle_connection_the_server_closed_is_replaced_without_a_failure(proxied) -> None:
    proxy, url, schema = proxied
    store = PostgresStore(url, schema=schema)
    store.migrate()
    try:
        proxy.stop()
        proxy.start()  # the server "restarted" while the collector was idle
        with store.transaction() as tx:
            tx.insert_event("p1", "a1", "e1", "b1", state_change(1, T0), T0)
        assert [r["seq"] for r in store.table_rows("events")] == [1]
        assert store.reconnects == 1
    finally:
        store.close()


@pytest.mark.broker
async def test_collector_holds_acks_while_postgres_is_away_and_resumes(mosquitto, proxied, tmp_path: Path) -> None:
    proxy, url, schema = proxied
    svc = CollectorService(_config(mosquitto, tmp_path / "data"), PostgresStore(url, schema=schema))
    svc.store.migrate()
    await svc.start()
    agent = FakeAgent(mosquitto, f"pg-{uuid.uuid4().hex[:6]}")
    await agent.start()
    topic = events_topic(SITE, agent.agent)
    try:
        await async_wait_until(lambda: svc.mqtt.connected, what="collector connected")
        await agent.send(birth_topic(SITE, agent.agent), encode(birth(SITE, agent.agent)))
        await agent.send(topic, heartbeats(SITE, agent.agent, list(range(1, 51))))
        await agent.acked(50)
        proxy.stop()
        for first in range(51, 351, 50):
            await agent.send(topic, heartbeats(SITE, agent.agent, list(range(first, first + 50))))
        await async_wait_until(lambda: svc.storage_fault is not None, what="the store unreachable")
        await async_wait_until(lambda: svc.held_messages >= 1, what="messages held, without PUBACK")
        assert agent.acks[-1].through == 50, "nothing acked that is not committed"
        proxy.start()
        await async_wait_until(lambda: agent.acks and agent.acks[-1].through == 350, 30, what="resumed")
        assert svc.storage_fault is None and svc.held_messages == 0
        stored = sorted(r["seq"] for r in svc.store.table_rows("events") if r["agent"] == agent.agent)
        assert stored == list(range(1, 351)), "nothing lost"
    finally:
        await agent.client.stop()
        await svc.stop()
        svc.store.close()


async def test_the_api_answers_503_while_the_database_is_away_and_200_when_it_is_back(proxied, tmp_path: Path) -> None:
    proxy, url, schema = proxied
    store = PostgresStore(url, schema=schema)
    store.migrate()
    try:
        token, _ = create_token(store, "plant", None, "mes", T0, "test", "here")
        app = create_app(store, Lifecycle(store, ContractBook({}, {}), lambda: T0, "here"), lambda: T0,
                         tmp_path / "rca")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                     headers={"Authorization": f"Bearer {token}"}) as api:
            assert (await api.get("/tickets")).status_code == 200
            proxy.stop()
            away = await api.get("/tickets")
            assert away.status_code == 503, away.text
            assert away.headers["Retry-After"].isdigit() and "unavailable" in away.json()["detail"]
            proxy.start()
            assert (await api.get("/tickets")).status_code == 200
    finally:
        store.close()
