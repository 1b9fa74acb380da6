"""TCP, process, host and file-age probes against real sockets, processes and files; the registry's safety net."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest
from msgspec import ValidationError

from agent.probes.base import Probe, ProbeResult
from agent.probes.context import ProbeContext
from agent.probes.registry import KINDS, probe_class, safe_poll
from linewarden.config.targets import TcpTarget
from linewarden.domain import ProbeKind, State
from simulators.broker import free_port
from tests.integration.probe_helpers import FAST, UNHURRIED, fast_context, probe, target


@pytest.fixture
async def context() -> AsyncIterator[ProbeContext]:
    ctx = fast_context(service_status=_services.get)
    yield ctx
    await ctx.close()


_services: dict[str, str | None] = {"MesAppServer": "running", "Historian": "stopped", "Backup": "start_pending"}


# ------------------------------------------------------------------ registry


def test_every_probe_kind_is_registered() -> None:
    assert {k.value for k in ProbeKind} == KINDS
    assert all(probe_class(k).kind == k for k in KINDS)


def test_point_wider_than_the_device_cap_is_refused(context: ProbeContext) -> None:
    points = [{"name": "f", "address": 0, "datatype": "float32"}]
    with pytest.raises(ValidationError, match=r"32-bit points \(f\) need max_registers_per_request >= 2"):
        target(type="modbus", host="127.0.0.1", max_registers_per_request=1, points=points)


class _Broken(Probe[TcpTarget]):
    kind = "tcp"

    async def poll(self, now: float) -> ProbeResult:
        raise RuntimeError("boom")


class _Hung(Probe[TcpTarget]):
    kind = "tcp"

    def poll_budget(self) -> float:
        return 0.1

    async def poll(self, now: float) -> ProbeResult:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_safe_poll_turns_errors_and_hangs_into_unknown(context: ProbeContext) -> None:
    tcp = target(type="tcp", host="127.0.0.1", port=1)
    broken = await safe_poll(_Broken(tcp, FAST.timeout, context, FAST.interval), time.time())  # type: ignore[arg-type]
    assert (broken.state, broken.reason) == (State.UNKNOWN, "probe error: RuntimeError('boom')")
    hung = await safe_poll(_Hung(tcp, FAST.timeout, context, FAST.interval), time.time())  # type: ignore[arg-type]
    assert (hung.state, hung.reason) == (State.UNKNOWN, "probe error: no result within 0.1 s")


# ------------------------------------------------------------------ tcp


async def test_tcp_up_and_refused(context: ProbeContext) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await probe(context, type="tcp", host="127.0.0.1", port=port).poll(time.time())
        assert result.state == State.UP and result.latency_ms is not None
    closed = await probe(context, type="tcp", host="127.0.0.1", port=free_port("127.0.0.1")).poll(time.time())
    assert (closed.state, closed.reason) == (State.DOWN, "connection refused")


# ------------------------------------------------------------------ process


@pytest.fixture
def sleeper() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    marker = f"lw-test-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([sys.executable, "-c", "import time, sys; time.sleep(60)", marker])
    yield proc, marker
    proc.kill()
    proc.wait()


async def test_process_by_command_line(context: ProbeContext, sleeper) -> None:
    proc, marker = sleeper
    p = probe(context, UNHURRIED, type="process", cmdline_contains=marker)
    assert (await p.poll(time.time())).state == State.UP
    two = probe(context, UNHURRIED, type="process", cmdline_contains=marker, min_count=2, id="t2")
    assert (await two.poll(time.time())).reason == (f"1 of 2 processes with {marker!r} in the command line running")
    proc.kill()
    proc.wait()
    assert (await p.poll(time.time())).state == State.DOWN


async def test_process_by_name(context: ProbeContext) -> None:
    name = psutil.Process(os.getpid()).name()
    assert (await probe(context, UNHURRIED, type="process", name=name).poll(time.time())).state == State.UP
    missing = await probe(context, UNHURRIED, type="process", name=f"{name}-nope").poll(time.time())
    assert (missing.state, missing.reason) == (State.DOWN, f"0 of 1 processes named '{name}-nope' running")


@pytest.mark.parametrize(
    ("service", "state", "reason"),
    [
        ("MesAppServer", State.UP, ""),
        ("Historian", State.DOWN, "service 'Historian' is stopped"),
        ("Backup", State.DEGRADED, "service 'Backup' is start_pending"),
        ("Nope", State.DOWN, "service 'Nope' not found"),
    ],
)
async def test_windows_service_through_the_injected_lookup(context: ProbeContext, service, state, reason) -> None:
    result = await probe(context, type="process", service=service).poll(time.time())
    assert (result.state, result.reason) == (state, reason)


@pytest.mark.skipif(sys.platform == "win32", reason="checks the non-Windows fallback")
async def test_real_service_lookup_off_windows_is_unknown() -> None:
    ctx = fast_context()
    result = await probe(ctx, type="process", service="Spooler").poll(time.time())
    assert (result.state, result.reason) == (State.UNKNOWN, "Windows services can only be checked on Windows")


# ------------------------------------------------------------------ host


async def test_host_thresholds(context: ProbeContext, tmp_path: Path) -> None:
    relaxed = probe(context, type="host", max_cpu_pct=100, max_memory_pct=100, disks=[{"path": str(tmp_path)}])
    result = await relaxed.poll(time.time())
    assert result.state == State.UP, result.reason
    assert 0 < result.values["memory_pct"] <= 100
    tight = probe(
        context, type="host", max_memory_pct=0.01, disks=[{"path": str(tmp_path), "max_used_pct": 0.01}], id="t2"
    )
    result = await tight.poll(time.time())
    assert result.state == State.DEGRADED
    assert "memory" in result.reason and f"disk {tmp_path}" in result.reason
    missing = probe(context, type="host", max_memory_pct=100, disks=[{"path": str(tmp_path / "gone")}], id="t3")
    assert f"disk {tmp_path / 'gone'}" in (await missing.poll(time.time())).reason
    for p in (relaxed, tight, missing):
        await p.close()


# ------------------------------------------------------------------ file age


async def test_file_age(context: ProbeContext, tmp_path: Path) -> None:
    p = probe(context, type="file_age", pattern=str(tmp_path / "*.bak"), max_age="26h", hash=True)
    missing = await p.poll(time.time())
    assert (missing.state, missing.reason) == (State.DOWN, f"no file matches {tmp_path / '*.bak'}")
    old, new = tmp_path / "mon.bak", tmp_path / "tue.bak"
    old.write_bytes(b"monday")
    new.write_bytes(b"tuesday")
    now = time.time()
    os.utime(old, (now - 80 * 3600, now - 80 * 3600))
    os.utime(new, (now - 30 * 3600, now - 30 * 3600))
    stale = await p.poll(now)
    assert (stale.state, stale.reason) == (State.DOWN, "newest file tue.bak is 30 h old (limit 26 h)")
    assert stale.versions == {"tue.bak": hashlib.sha256(b"tuesday").hexdigest()}
    os.utime(new, (now - 3600, now - 3600))
    fresh = await p.poll(now)
    assert (fresh.state, fresh.values["file"]) == (State.UP, "tue.bak")
