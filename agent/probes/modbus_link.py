"""One Modbus connection per line, shared by every unit id and target on it: a TCP server or gateway
(host:port, Modbus TCP or RTU framed over TCP) or a serial port (RTU on RS-485/RS-232).

Requests are serialised by a lock (gateways often allow one or two TCP sessions and answer one request at a
time; a serial line carries one frame at a time). The agent's poll loop polls a line's targets one after
another (agent/runtime.py: one lane per line), so there the lock is never waited for; it serialises polls made
side by side (`agent check`). It is first come, first served: a target waiting for the line gets it before
another target's next request. Either way targets take turns, and one slow unit delays each of the others by at
most one timeout. Requests are paced by `pause_between_requests` and, on RTU lines, by the
line's 3.5-character gap (linewarden.modbus_timing), with a longer quiet time after a unit failed to answer.

Failures are sorted into three kinds with distinct reasons and cause codes: the device answered with an
exception (`modbus.exception.<code>`), nobody answered in time (`modbus.timeout`), or the connection could not
be made or broke (`modbus.refused`, `modbus.connection_lost`, `modbus.serial_unavailable`, ...). Exception 2
(illegal data address) is marked as a possible configuration mistake.

A timeout, or a poll ended by its budget while a request waited for its answer, closes a Modbus TCP connection
(a late answer would be taken for the next request's). RTU lines keep theirs and stay quiet instead (pymodbus
drops an answer from another unit, and a late one arrives during the quiet time); reopening a serial port
would not bring a silent unit back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Literal

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.framer import FramerType

from agent.probes.backoff import Backoff
from linewarden.config.targets import ModbusTarget
from linewarden.domain import State
from linewarden.errors import ProbeError
from linewarden.modbus_plan import ReadRequest
from linewarden.modbus_timing import frame_gap_s, late_answer_guard_s

FailureKind = Literal["exception", "timeout", "connection"]
Client = AsyncModbusTcpClient | AsyncModbusSerialClient
# An RTU line keeps its connection through timeouts: pymodbus must not close it after a few either.
_NEVER_CLOSE_FOR_SILENCE = 1 << 30

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
    """The shared connection to one Modbus line; `settings` is the first target's on it (the config
    checks that all of them agree on the line's settings)."""

    def __init__(self, settings: ModbusTarget, timeout: float, backoff: Backoff) -> None:
        self.settings = settings
        self.host = settings.host
        self.port = settings.port
        self.timeout = timeout
        self.backoff = backoff
        self.rtu = settings.transport != "tcp"
        line = (settings.baudrate, settings.parity, settings.stopbits)
        self.frame_gap = frame_gap_s(*line) if self.rtu else 0.0
        self.late_answer_guard = late_answer_guard_s(*line) if self.rtu else 0.0
        self.planned_requests = 0  # of all targets on the line, per round of polls: see ModbusProbe.poll_budget
        self._client: Client | None = None
        self._lock = asyncio.Lock()
        self._last_request_end = 0.0
        self._quiet_until = 0.0
        self._connect_failure = ("not connected", "modbus.not_connected")
        self.connects = 0
        self.requests_sent = 0

    def request_cost_s(self, pause: float) -> float:
        """The longest one request may hold the line: its timeout, the wait before it, the quiet after it."""
        return self.timeout + 0.5 + max(pause, self.frame_gap) + self.late_answer_guard

    async def read(self, request: ReadRequest, pause: float = 0.0) -> list[int] | list[bool]:
        """Read one planned request. Raises ModbusFailure with the reason."""
        async with self._lock:
            client = await self._connected()
            ready = max(self._last_request_end + max(pause, self.frame_gap), self._quiet_until)
            wait = ready - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self.requests_sent += 1
            try:
                # pymodbus bounds the wait for the answer by `timeout` (ModbusIOException); the probe's poll
                # budget (registry.safe_poll) bounds everything else, so no timer of our own per request
                return await self._execute(client, request)
            except (TimeoutError, ModbusIOException):
                lost = self._unanswered(client)
                if lost:
                    raise ModbusFailure("connection lost", "connection", "modbus.connection_lost") from None
                raise ModbusFailure(
                    f"no answer within {self.timeout:g} s from unit {request.unit}", "timeout", "modbus.timeout"
                ) from None
            except (ConnectionException, OSError):
                self._drop()
                raise ModbusFailure("connection lost", "connection", "modbus.connection_lost") from None
            except asyncio.CancelledError:  # the poll's budget ran out (or the agent stops) before the answer
                self._unanswered(client)
                raise
            finally:
                self._last_request_end = time.monotonic()

    async def close(self) -> None:
        async with self._lock:
            self._drop()

    def _unanswered(self, client: Client) -> bool:
        """After a request got no answer, keep a late one from meeting the next request: a new TCP connection;
        on an RTU line, the quiet time. True when the connection was lost."""
        lost = not client.connected
        if lost or not self.rtu:
            self._drop()
        else:
            self._quiet_until = time.monotonic() + self.late_answer_guard
        return lost

    async def _execute(self, client: Client, request: ReadRequest) -> list[int] | list[bool]:
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

    async def _connected(self) -> Client:
        if self._client is not None and self._client.connected:
            return self._client
        self._drop()
        if not self.backoff.begin():
            raise ModbusFailure(self._connect_failure[0], "connection", self._connect_failure[1])
        client = self._new_client()
        try:
            ok = await asyncio.wait_for(client.connect(), self.timeout + 0.5)
        except TimeoutError:
            ok = False
        if not ok:
            client.close()
            self._connect_failure = await self._why_no_connection()
            self.backoff.failed()
            raise ModbusFailure(self._connect_failure[0], "connection", self._connect_failure[1])
        if self.rtu:
            client.set_max_no_responses(_NEVER_CLOSE_FOR_SILENCE)
        self.backoff.succeeded()
        self.connects += 1
        self._client = client
        return client

    def _new_client(self) -> Client:
        s = self.settings
        if s.transport == "serial":
            assert s.serial_port is not None
            return AsyncModbusSerialClient(
                s.serial_port, framer=FramerType.RTU, baudrate=s.baudrate, parity=s.parity, stopbits=s.stopbits,
                timeout=self.timeout, retries=0, reconnect_delay=0, name="linewarden",
            )
        assert s.host is not None
        framer = FramerType.RTU if self.rtu else FramerType.SOCKET
        return AsyncModbusTcpClient(
            s.host, port=s.port, framer=framer, timeout=self.timeout, retries=0, reconnect_delay=0, name="linewarden"
        )

    async def _why_no_connection(self) -> tuple[str, str]:
        """pymodbus only says connect() failed; find out how, in words an engineer can act on (and its cause)."""
        if self.settings.serial_port is not None:
            return await asyncio.to_thread(_why_serial_port_fails, self.settings.serial_port)
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

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


def _why_serial_port_fails(port: str) -> tuple[str, str]:
    """(reason, cause) of a serial port pymodbus could not open: missing, refused, or taken by another program."""
    import serial  # pyserial, which pymodbus uses for serial ports

    try:
        handle = serial.serial_for_url(port, exclusive=True)
    except serial.SerialException as exc:
        errno_text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return f"cannot open serial port {port}: {errno_text}", "modbus.serial_unavailable"
    handle.close()
    return f"cannot open serial port {port}", "modbus.serial_unavailable"
