"""The simulated MES over real HTTP (httpx): health, version, and each fault as a client sees it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from linewarden.errors import SimulatorError
from simulators.mes import MesServer
from tests.waiting import async_wait_until


@pytest.fixture
async def mes() -> AsyncIterator[MesServer]:
    async with MesServer("mes", version="5.2.0", build="5200") as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        yield client


async def test_health_and_version(mes: MesServer, http: httpx.AsyncClient) -> None:
    health = await http.get(f"{mes.url}/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "components": {"database": "ok", "queue": "ok", "scheduler": "ok"}}
    assert (await http.get(f"{mes.url}/version")).json() == {"version": "5.2.0", "build": "5200"}
    assert (await http.get(f"{mes.url}/nowhere")).status_code == 404
    assert (await http.post(f"{mes.url}/health")).status_code == 405

    await mes.set_version("5.3.0", "5301")
    assert (await http.get(f"{mes.url}/version")).json() == {"version": "5.3.0", "build": "5301"}


async def test_degraded_component_and_clear(mes: MesServer, http: httpx.AsyncClient) -> None:
    await mes.degraded("queue")
    body = (await http.get(f"{mes.url}/health")).json()
    assert body["status"] == "degraded"
    assert body["components"]["queue"] == "degraded"
    assert body["components"]["database"] == "ok"
    with pytest.raises(SimulatorError):
        await mes.degraded("printer")
    await mes.clear()
    assert (await http.get(f"{mes.url}/health")).json()["status"] == "ok"


async def test_slow_answers_late(mes: MesServer, http: httpx.AsyncClient) -> None:
    await mes.slow(1500)
    with pytest.raises(httpx.ReadTimeout):
        # only the read is short: connecting may take longer than 0.3 s on a busy machine
        await http.get(f"{mes.url}/health", timeout=httpx.Timeout(10, read=0.3))
    await mes.slow(0)
    assert (await http.get(f"{mes.url}/health")).status_code == 200


async def test_down_as_503_or_refused_and_back(mes: MesServer, http: httpx.AsyncClient) -> None:
    await mes.down(refuse=False)
    answer = await http.get(f"{mes.url}/health")
    assert answer.status_code == 503
    assert answer.json()["status"] == "down"
    await mes.up()
    assert (await http.get(f"{mes.url}/health")).status_code == 200

    port = mes.port
    await mes.down(seconds=2)  # long enough that the refused request below lands inside it, however busy
    with pytest.raises(httpx.ConnectError):
        await http.get(f"{mes.url}/health")

    async def answers() -> bool:
        try:
            return (await http.get(f"{mes.url}/health")).status_code == 200
        except httpx.ConnectError:
            return False

    await async_wait_until(answers, timeout=30, what="MES back after down(2)")
    assert mes.port == port

    await mes.restart()
    assert (mes.port, mes.restarts) == (port, 1)
    assert (await http.get(f"{mes.url}/health")).status_code == 200


async def test_bad_requests_do_not_break_the_server(mes: MesServer, http: httpx.AsyncClient) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", mes.port)
    writer.write(b"garbage\r\n\r\n")
    await writer.drain()
    reply = await reader.read()
    writer.close()
    assert reply.startswith(b"HTTP/1.1 400")
    assert (await http.get(f"{mes.url}/health")).status_code == 200


async def test_keep_alive_serves_many_requests_on_one_connection(http: httpx.AsyncClient) -> None:
    async with MesServer("mes", keep_alive=True) as mes:
        for _ in range(5):
            response = await http.get(f"{mes.url}/health")
            assert response.status_code == 200 and response.headers["connection"] == "keep-alive"
        assert mes.connections == 1
        closing = await http.get(f"{mes.url}/version", headers={"Connection": "close"})
        assert closing.headers["connection"] == "close"
        await http.get(f"{mes.url}/health")
        assert mes.connections == 2
        await mes.down()  # a crash also drops the kept connection: the client sees it broken, then refused
        for _ in range(2):
            with pytest.raises(httpx.TransportError):
                await http.get(f"{mes.url}/health")


async def test_without_keep_alive_every_answer_closes(mes: MesServer, http: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert (await http.get(f"{mes.url}/health")).headers["connection"] == "close"
    assert mes.connections == 3
