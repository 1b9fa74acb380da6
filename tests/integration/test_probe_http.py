"""HTTP probe against the simulated MES and a local HTTPS server with its own CA."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent.probes.context import ProbeContext
from agent.probes.http import MISSING, dotted
from linewarden.domain import State
from simulators.mes import MesServer
from tests.certs import self_signed
from tests.integration.probe_helpers import fast_context, probe


@pytest.fixture
async def context() -> AsyncIterator[ProbeContext]:
    ctx = fast_context()
    yield ctx
    await ctx.close()


def health(context: ProbeContext, mes: MesServer, **extra):
    fields = {
        "type": "http",
        "url": f"{mes.url}/health",
        "json_path": "status",
        "condition": {"equals": "ok"},
        "version_url": f"{mes.url}/version",
        "version_json_path": "version",
        **extra,
    }
    return probe(context, **fields)


async def test_mes_up_degraded_down_and_back(context: ProbeContext) -> None:
    async with MesServer(version="5.2.0") as mes:
        p = health(context, mes)
        try:
            up = await p.poll(time.time())
            assert (up.state, up.reason, up.versions) == (State.UP, "", {"version": "5.2.0"})
            await mes.degraded("database")
            degraded = await p.poll(time.time())
            assert (degraded.state, degraded.reason) == (State.DEGRADED, "status is 'degraded', expected 'ok'")
            await mes.clear()
            await mes.down(refuse=False)
            unavailable = await p.poll(time.time())
            assert (unavailable.state, unavailable.reason) == (State.DOWN, "HTTP 503 Service Unavailable")
            await mes.down()
            assert (await p.poll(time.time())).reason == "connection refused"
            await mes.up()
            assert (await p.poll(time.time())).state == State.UP
        finally:
            await p.close()


async def test_slow_answers(context: ProbeContext) -> None:
    async with MesServer() as mes:
        slow = health(context, mes, degraded_latency="100ms")
        timing_out = health(context, mes, id="t2")
        try:
            await mes.slow(250)
            result = await slow.poll(time.time())
            assert result.state == State.DEGRADED
            assert result.reason.startswith("slow answer: ") and result.reason.endswith("(limit 100 ms)")
            await mes.slow(900)
            assert (await timing_out.poll(time.time())).reason == "no answer within 0.5 s"
        finally:
            await slow.close()
            await timing_out.close()


async def test_missing_json_path(context: ProbeContext) -> None:
    async with MesServer() as mes:
        p = health(context, mes, json_path="components.printer")
        try:
            result = await p.poll(time.time())
            assert (result.state, result.reason) == (State.DEGRADED, "no 'components.printer' in the answer")
        finally:
            await p.close()


def test_dotted_paths() -> None:
    data = {"a": {"b": [{"c": 3}]}, "ok": True}
    assert dotted(data, "a.b.0.c") == 3
    assert dotted(data, "ok") is True
    assert dotted(data, "a.b.1.c") is MISSING
    assert dotted(data, "ok.deeper") is MISSING




async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        body = b'{"status": "ok"}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(body))
        writer.write(b"Connection: close\r\n\r\n" + body)
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def test_tls_with_a_custom_ca(context: ProbeContext, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    server = await asyncio.start_server(_answer, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    url = f"https://127.0.0.1:{port}/health"
    trusted = probe(context, type="http", url=url, ca_file=str(cert), json_path="status", condition={"equals": "ok"})
    untrusted = probe(context, type="http", url=url, id="t2")
    try:
        async with server:
            assert (await trusted.poll(time.time())).state == State.UP
            refused = await untrusted.poll(time.time())
            assert refused.state == State.DOWN
            assert refused.reason.startswith("TLS failed")
    finally:
        await trusted.close()
        await untrusted.close()


async def test_a_kept_alive_mes_is_polled_over_one_connection(context: ProbeContext) -> None:
    async with MesServer(keep_alive=True) as mes:
        p = health(context, mes)
        try:
            for _ in range(5):
                assert (await p.poll(time.time())).state == State.UP
            assert mes.connections == 1
            await mes.restart()  # the kept connection breaks: the next poll connects again, and is UP
            assert (await p.poll(time.time())).state == State.UP
            assert mes.connections == 2
        finally:
            await p.close()


async def test_plain_http_targets_share_a_client_that_trusts_no_certificate() -> None:
    context = ProbeContext()
    try:
        plain = context.http_client(True, None, ["http://127.0.0.1:1/health"])
        assert context.http_client(False, None, ["http://127.0.0.1:2/health", "HTTP://127.0.0.1:2/v"]) is plain
        verified = context.http_client(True, None, ["http://127.0.0.1:3/health", "https://127.0.0.1:3/v"])
        assert verified is not plain
        tls, other = (_ssl_context(c) for c in (plain, verified))
        assert (tls.verify_mode, tls.cert_store_stats()["x509_ca"]) == (ssl.CERT_REQUIRED, 0)
        assert other.cert_store_stats()["x509_ca"] > 0
    finally:
        await context.close()


def _ssl_context(client: object) -> ssl.SSLContext:
    pool: Any = client._transport._pool  # type: ignore[attr-defined]  # httpx's connection pool
    context: ssl.SSLContext = pool._ssl_context
    return context
