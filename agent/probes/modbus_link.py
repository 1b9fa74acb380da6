"""One Modbus TCP connection per host:port, shared by every unit id and target behind it.

Requests are serialised by a lock (gateways often allow one or two TCP sessions and answer one request at a
time), paced by `pause_between_requests`, and sorted into three failure kinds with distinct reasons and cause
codes: the device answered with an exception (`modbus.exception.<code>`), nobody answered in time
(`modbus.timeout`), or the connection could not be made or broke (`modbus.refused`, `modbus.connection_lost`,
...). Exception 2 (illegal data address) is marked as a possible configuration mistake.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Literal

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from agent.probes.backoff import Backoff
from linewarden.domain import State
from linewarden.errors import ProbeError
from linewarden.modbus_plan import ReadRequest

FailureKind = Literal["exception", "timeout", "connection"]

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
# The device (or the gateway's path to it) is broken; the other codes mean it answers but refuses our request.
_DOWN_EXCEPTIONS = {4, 10, 11}
# An address the device does not have: the config's mistake until the target has been seen working.
_CONFIGURATION_EXCEPTIONS = {2: "config.illegal_address"}


_READERS = {
    "holding": "read_holding_registers",
    "input": "read_input_registers",
    "coil": "read_coils",
    "discrete": "read_discrete_inputs",
}


class ModbusFailure(ProbeError):
    def __init__(
        self, reason: str, kind: FailureKind, cause: str, state: State = State.DOWN, configuration: str = ""
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.cause = cause
        self.state = state
        self.configuration = configuration


class ModbusLink:
    """The shared connection to one Modbus TCP server or gateway."""

    def __init__(self, host: str, port: int, timeout: float, backoff: Backoff) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.backoff = backoff
        self._client: AsyncModbusTcpClient | None = None
        self._lock = asyncio.Lock()
        self._last_request_end = 0.0
        self._connect_failure = ("not connected", "modbus.not_connected")
        self.connects = 0
        self.requests_sent = 0

    async def read(self, request: ReadRequest, pause: float = 0.0) -> list[int] | list[bool]:
        """Read one planned request. Raises ModbusFailure with the reason."""
        async with self._lock:
            client = await self._connected()
            wait = self._last_request_end + pause - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self.requests_sent += 1
            try:
                # pymodbus bounds the wait for the answer by `timeout` (ModbusIOException); the probe's poll
                # budget (registry.safe_poll) bounds everything else, so no timer of our own per request
                return await self._execute(client, request)
            except (TimeoutError, ModbusIOException):
                lost = not client.connected
                # A late answer would be taken for the next request's: start over on a fresh connection.
                await self._drop()
                if lost:
                    raise ModbusFailure("connection lost", "connection", "modbus.connection_lost") from None
                raise ModbusFailure(f"no answer within {self.timeout:g} s", "timeout", "modbus.timeout") from None
            except (ConnectionException, OSError):
                await self._drop()
                raise ModbusFailure("connection lost", "connection", "modbus.connection_lost") from None
            finally:
                self._last_request_end = time.monotonic()

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def _execute(self, client: AsyncModbusTcpClient, request: ReadRequest) -> list[int] | list[bool]:
        response = await getattr(client, _READERS[request.table])(
            request.address, count=request.count, device_id=request.unit
        )
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            name = EXCEPTION_NAMES.get(code, "unknown")
            state = State.DOWN if code in _DOWN_EXCEPTIONS else State.DEGRADED
            raise ModbusFailure(
                f"modbus exception {code} ({name}) from unit {request.unit}",
                "exception",
                f"modbus.exception.{code}",
                state,
                configuration=_CONFIGURATION_EXCEPTIONS.get(code, ""),
            )
        if request.table in ("coil", "discrete"):
            bits: list[bool] = list(response.bits[: request.count])
            return bits
        registers: list[int] = list(response.registers)
        if len(registers) < request.count:
            raise ModbusFailure(
                f"short answer from unit {request.unit}: {len(registers)} of {request.count} registers",
                "exception",
                "modbus.short_answer",
                State.DEGRADED,
            )
        return registers

    async def _connected(self) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        await self._drop()
        if not self.backoff.begin():
            raise ModbusFailure(self._connect_failure[0], "connection", self._connect_failure[1])
        client = AsyncModbusTcpClient(
            self.host, port=self.port, timeout=self.timeout, retries=0, reconnect_delay=0, name="linewarden"
        )
        try:
            ok = await asyncio.wait_for(client.connect(), self.timeout + 0.5)
        except TimeoutError:
            ok = False
        if not ok:
            client.close()
            self._connect_failure = await self._why_no_connection()
            self.backoff.failed()
            raise ModbusFailure(self._connect_failure[0], "connection", self._connect_failure[1])
        self.backoff.succeeded()
        self.connects += 1
        self._client = client
        return client

    async def _why_no_connection(self) -> tuple[str, str]:
        """pymodbus only says connect() failed; find out how, in words an engineer can act on (and its cause)."""
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout)
        except ConnectionRefusedError:
            return "connection refused", "modbus.refused"
        except TimeoutError:
            return f"no answer to connect within {self.timeout:g} s", "modbus.connect_timeout"
        except OSError as exc:
            return f"cannot connect: {exc.strerror or exc}", "modbus.unreachable"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return "connection lost", "modbus.connection_lost"

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
