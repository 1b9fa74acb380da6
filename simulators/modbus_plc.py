"""Simulated Modbus TCP gateway with several PLC units behind one port (pymodbus server), with fault injection.

Register map of every unit (protocol addresses, 0-based; 32-bit values span two registers in the
configured word order, bytes inside a register big-endian):

| table | address | content |
|---|---|---|
| holding | 0 | heartbeat, uint16, +1 every `heartbeat_period` (wraps) |
| holding | 1 | status: 1 = RUN, 0 = STOP |
| holding | 2 | fault code (0 = none) |
| holding | 10-11 | produced-parts counter, int32 (starts above 65535, so both words matter) |
| holding | 12-13 | temperature °C, float32 |
| holding | 14 | coolant offset, int16 (negative) |
| holding | 20 | spindle speed rpm, uint16 (0 when stopped) |
| holding | 21 | pressure in 0.01 bar, uint16 |
| holding | 22-23 | ticks since start (seconds at the default period), uint32 |
| holding | 30 / 31 | firmware version major / minor, uint16 |
| holding | 40-99 | free, writable (setpoints); `set_version_text` writes 90-97 |
| input | 0-23 | mirror of holding 0-23 |
| coil, discrete | 0 / 1 | running / fault present |

Addresses outside the map answer exception 2 (illegal address); an unknown unit id answers 11 (gateway target
failed to respond), like a real gateway.

With `framer="rtu"` the units speak Modbus RTU: over TCP (a serial device server in transparent mode), or on
the serial port `serial_port` (one end of a simulators.serial_line.PtyPair). There is no gateway then, so an
unknown or silenced unit does not answer at all, as on a real RS-485 line. `frames` logs every request served:
(received, answered, unit), monotonic seconds, for checks of a line's timing.

Faults: `exception(code, unit=None)`, `delay(ms, unit=None)`, `silence(unit)`, `drop_connections()`,
`stop_listening()` /
`start_listening()`, `down(seconds)` / `up()`, `restart()`, `degraded(unit, fault_code, stale_heartbeat,
running)`, `set_version(major, minor)`, `clear()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator.simcore import SimCore

from linewarden.errors import SimulatorError
from simulators.broker import free_port
from simulators.lifecycle import AsyncService

WordOrder = Literal["big", "little"]
Framing = Literal["socket", "rtu"]

HR_HEARTBEAT, HR_STATUS, HR_FAULT = 0, 1, 2
HR_COUNTER, HR_TEMPERATURE, HR_OFFSET = 10, 12, 14
HR_SPEED, HR_PRESSURE, HR_UPTIME = 20, 21, 22
HR_FW_MAJOR, HR_FW_MINOR = 30, 31
HR_WRITABLE = range(40, 100)
HR_VERSION_TEXT, VERSION_TEXT_REGISTERS = 90, 8
N_HOLDING, N_INPUT, N_BITS = 100, 24, 16
COIL_RUNNING, COIL_FAULT = 0, 1

_TABLE_OF_FUNCTION = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 4: "input"}
_TABLE_OF_FUNCTION.update(dict.fromkeys((3, 6, 16, 22, 23), "holding"))


@dataclass
class _Unit:
    """One PLC behind the gateway: its registers and its health."""

    unit_id: int
    word_order: WordOrder
    holding: list[int] = field(default_factory=lambda: [0] * N_HOLDING)
    coils: list[bool] = field(default_factory=lambda: [False] * N_BITS)
    running: bool = True
    fault_code: int = 0
    stale_heartbeat: bool = False
    heartbeat: int = 0
    counter: int = 0
    uptime: int = 0

    def put32(self, address: int, fmt: str, value: float) -> None:
        hi, lo = struct.unpack(">HH", struct.pack(fmt, value))
        self.holding[address : address + 2] = [hi, lo] if self.word_order == "big" else [lo, hi]

    def values(self, tick: int) -> dict[str, float | int]:
        """The process values at this tick (what the registers are set to)."""
        return {
            "heartbeat": self.heartbeat,
            "status": 1 if self.running else 0,
            "fault_code": self.fault_code,
            "counter": self.counter,
            "temperature": round(40.0 + self.unit_id + 2.5 * math.sin(tick / 9), 2),
            "offset": -(10 + self.unit_id),
            "speed": int(1200 + 30 * math.sin(tick / 4)) if self.running else 0,
            "pressure": int(420 + 15 * math.sin(tick / 6)),
            "uptime": self.uptime,
        }

    def refresh(self, tick: int) -> None:
        v = self.values(tick)
        self.holding[HR_HEARTBEAT] = self.heartbeat
        self.holding[HR_STATUS] = int(v["status"])
        self.holding[HR_FAULT] = self.fault_code
        self.put32(HR_COUNTER, ">i", self.counter)
        self.put32(HR_TEMPERATURE, ">f", v["temperature"])
        self.holding[HR_OFFSET] = int(v["offset"]) & 0xFFFF
        self.holding[HR_SPEED] = int(v["speed"])
        self.holding[HR_PRESSURE] = int(v["pressure"])
        self.put32(HR_UPTIME, ">I", self.uptime)
        self.coils[COIL_RUNNING] = self.running
        self.coils[COIL_FAULT] = self.fault_code != 0


class _GatewayStore(SimCore):
    """The datastore pymodbus calls for every request: registers per unit, plus the injected faults."""

    def __init__(self, plc: ModbusPlc) -> None:
        super().__init__([])
        self._plc = plc

    def device_ids(self) -> list[int]:
        return list(self._plc.units)

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        received = time.monotonic()
        unit = await self._enter(device_id)
        self._plc.frames.append((received, time.monotonic(), device_id))
        if isinstance(unit, ExcCodes):
            return unit
        table = _TABLE_OF_FUNCTION.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        if table in ("coil", "discrete"):
            bits = unit.coils
            return bits[address : address + count] if address + count <= len(bits) else ExcCodes.ILLEGAL_ADDRESS
        size = N_INPUT if table == "input" else N_HOLDING
        if address + count > size:
            return ExcCodes.ILLEGAL_ADDRESS
        return unit.holding[address : address + count]

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        unit = await self._enter(device_id)
        if isinstance(unit, ExcCodes):
            return unit
        if _TABLE_OF_FUNCTION.get(func_code) != "holding":
            return ExcCodes.ILLEGAL_FUNCTION
        if address not in HR_WRITABLE or address + len(values) - 1 not in HR_WRITABLE:
            return ExcCodes.ILLEGAL_ADDRESS
        unit.holding[address : address + len(values)] = [int(v) for v in values]
        return None

    async def _enter(self, device_id: int) -> _Unit | ExcCodes:
        plc = self._plc
        unit = plc.units.get(device_id)
        if unit is None or device_id in plc.silent_units:
            if plc.framer == "rtu":
                raise NoSuchIdException(f"unit {device_id} is silent")  # the server then sends nothing
            return ExcCodes.GATEWAY_NO_RESPONSE
        delay_ms = plc.unit_delay_ms.get(device_id, plc.delay_ms)
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        forced = self._plc.forced_exceptions.get(device_id, self._plc.forced_exceptions.get(None))
        return forced if forced is not None else unit


class ModbusPlc(AsyncService):
    """A Modbus TCP gateway to several PLC units. `async with ModbusPlc("gw1") as plc: plc.port`."""

    kind = "modbus"

    def __init__(
        self,
        name: str,
        host: str = "127.0.0.1",
        port: int = 0,
        units: Iterable[int] = (1, 2, 3),
        word_order: WordOrder = "big",
        heartbeat_period: float = 1.0,
        firmware: tuple[int, int] = (1, 0),
        framer: Framing = "socket",
        serial_port: str | None = None,
        baudrate: int = 19200,
        parity: Literal["N", "E", "O"] = "E",
        stopbits: int = 1,
    ) -> None:
        if framer not in ("socket", "rtu"):
            raise SimulatorError(f"framer is 'socket' or 'rtu', not {framer!r}")
        if serial_port is not None and framer != "rtu":
            raise SimulatorError("a serial port carries Modbus RTU: give framer='rtu'")
        if word_order not in ("big", "little"):
            raise SimulatorError(f"word_order is 'big' or 'little', not {word_order!r}")
        if heartbeat_period <= 0:
            raise SimulatorError("heartbeat_period must be > 0")
        self.name = name
        self.host = host
        self.port = port or free_port(host)
        self.word_order: WordOrder = word_order
        self.heartbeat_period = heartbeat_period
        self.units: dict[int, _Unit] = {}
        for unit_id in units:
            if not 1 <= unit_id <= 247:
                raise SimulatorError(f"unit id {unit_id} is outside 1..247")
            self.units[unit_id] = _Unit(unit_id, word_order, counter=70_000 + 1000 * unit_id)
        if not self.units:
            raise SimulatorError("a Modbus gateway needs at least one unit")
        self.framer: Framing = framer
        self.serial_port = serial_port
        self.line = (baudrate, parity, stopbits)
        self.delay_ms = 0
        self.unit_delay_ms: dict[int, int] = {}
        self.silent_units: set[int] = set()
        self.frames: deque[tuple[float, float, int]] = deque(maxlen=10_000)
        self.forced_exceptions: dict[int | None, ExcCodes] = {}
        self._ticks = 0
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._up_timer: asyncio.Task[None] | None = None
        self._set_firmware(*firmware)
        self._refresh()

    @property
    def endpoint(self) -> str:
        if self.serial_port is not None:
            return f"serial://{self.serial_port}"
        return f"{'rtu+' if self.framer == 'rtu' else ''}tcp://{self.host}:{self.port}"

    @property
    def listening(self) -> bool:
        return self._server is not None

    def snapshot(self, unit: int) -> dict[str, float | int]:
        """The values unit `unit` holds now, decoded: what a client must read back."""
        return self.units[unit].values(self._ticks)

    async def start(self) -> None:
        await self.start_listening()
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_forever(), name=f"modbus-plc-{self.name}")

    async def stop(self) -> None:
        self._cancel_timer()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.stop_listening()

    # ------------------------------------------------------------------ faults

    async def exception(self, code: int, unit: int | None = None) -> None:
        """Answer every request (to `unit`, or to all units when None) with Modbus exception `code`."""
        try:
            exc_code = ExcCodes(code)
        except ValueError:
            known = ", ".join(f"{c.value} {c.name}" for c in ExcCodes)
            raise SimulatorError(f"unknown Modbus exception code {code} (known: {known})") from None
        if unit is not None:
            self._unit(unit)
        self.forced_exceptions[unit] = exc_code

    async def delay(self, ms: int, unit: int | None = None) -> None:
        """Answer every request (to `unit`, or to all units when None) `ms` milliseconds late (0 = normal)."""
        if ms < 0:
            raise SimulatorError("delay: ms must be >= 0")
        if unit is None:
            self.delay_ms = ms
        else:
            self._unit(unit)
            self.unit_delay_ms[unit] = ms

    async def silence(self, unit: int) -> None:
        """Unit `unit` stops answering (a gateway answers exception 11 for it; an RTU line stays silent)."""
        self._unit(unit)
        self.silent_units.add(unit)

    async def drop_connections(self) -> None:
        """Close every client connection once; the gateway keeps listening."""
        if self._server is not None:
            for connection in list(self._server.active_connections.values()):
                connection.close()

    async def stop_listening(self) -> None:
        """Close the port and every connection: clients get 'connection refused'."""
        server, self._server = self._server, None
        if server is not None:
            server.close()

    async def start_listening(self) -> None:
        if self._server is not None:
            return
        rtu = self.framer == "rtu"
        server: ModbusTcpServer | ModbusSerialServer
        if self.serial_port is not None:
            baudrate, parity, stopbits = self.line
            server = ModbusSerialServer(
                [], framer=FramerType.RTU, port=self.serial_port, baudrate=baudrate, parity=parity,
                stopbits=stopbits, ignore_missing_devices=True,
            )
        else:
            framer = FramerType.RTU if rtu else FramerType.SOCKET
            server = ModbusTcpServer([], framer=framer, address=(self.host, self.port), ignore_missing_devices=rtu)
        server.context = _GatewayStore(self)
        self._server = server  # before the await: a concurrent start_listening() sees it
        try:
            await server.serve_forever(background=True)
        except RuntimeError:
            self._server = None
            raise SimulatorError(f"Modbus gateway {self.name} cannot listen on {self.endpoint}") from None

    async def down(self, seconds: float | None = None) -> None:
        """Stop listening for `seconds` (None: until `up()`)."""
        self._cancel_timer()
        await self.stop_listening()
        if seconds is not None:
            self._up_timer = asyncio.create_task(self._up_after(seconds))

    async def up(self) -> None:
        self._cancel_timer()
        await self.start_listening()

    async def restart(self) -> None:
        """A gateway reboot: every connection closes, the port refuses briefly, then listens again."""
        self._cancel_timer()
        await self.stop_listening()
        await self.start_listening()

    async def degraded(
        self, unit: int | None = None, fault_code: int = 1, stale_heartbeat: bool = True, running: bool = True
    ) -> None:
        """Set a fault code, freeze the heartbeat, optionally STOP, on one unit (None: all units)."""
        if not 0 <= fault_code <= 0xFFFF:
            raise SimulatorError("degraded: fault_code is 0..65535")
        for u in self._targets(unit):
            u.fault_code = fault_code
            u.stale_heartbeat = stale_heartbeat
            u.running = running
        self._refresh()

    async def set_version(self, major: int, minor: int) -> None:
        """Change the firmware version registers (holding 30-31) of every unit."""
        self._set_firmware(major, minor)

    async def set_version_text(self, text: str, unit: int | None = None) -> None:
        """Write a version as ASCII text (two characters a register, high byte first, NUL-padded) to holding
        90-97 of one unit or every unit."""
        raw = text.encode("ascii")
        if len(raw) > 2 * VERSION_TEXT_REGISTERS:
            raise SimulatorError(f"a version text holds at most {2 * VERSION_TEXT_REGISTERS} characters")
        raw = raw.ljust(2 * VERSION_TEXT_REGISTERS, b"\x00")
        words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
        for u in self._targets(unit):
            u.holding[HR_VERSION_TEXT : HR_VERSION_TEXT + VERSION_TEXT_REGISTERS] = words

    def _set_firmware(self, major: int, minor: int) -> None:
        if not (0 <= major <= 0xFFFF and 0 <= minor <= 0xFFFF):
            raise SimulatorError("firmware major and minor are 0..65535")
        self.firmware = (major, minor)
        for u in self.units.values():
            u.holding[HR_FW_MAJOR], u.holding[HR_FW_MINOR] = major, minor

    async def clear(self) -> None:
        """Remove every fault and listen again. The firmware version stays."""
        self.forced_exceptions.clear()
        self.delay_ms = 0
        self.unit_delay_ms.clear()
        self.silent_units.clear()
        for u in self.units.values():
            u.fault_code, u.stale_heartbeat, u.running = 0, False, True
        self._refresh()
        await self.up()

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "endpoint": self.endpoint,
            "up": self.listening,
            "listening": self.listening,
            "word_order": self.word_order,
            "delay_ms": self.delay_ms,
            "exceptions": {("all" if k is None else str(k)): int(v) for k, v in self.forced_exceptions.items()},
            "firmware": f"{self.firmware[0]}.{self.firmware[1]}",
            "units": {
                str(uid): {"running": u.running, "fault_code": u.fault_code, "stale_heartbeat": u.stale_heartbeat}
                for uid, u in self.units.items()
            },
        }

    # ------------------------------------------------------------------ internals

    def _unit(self, unit: int) -> _Unit:
        try:
            return self.units[unit]
        except KeyError:
            raise SimulatorError(f"gateway {self.name} has no unit {unit}; it has {sorted(self.units)}") from None

    def _targets(self, unit: int | None) -> Sequence[_Unit]:
        return list(self.units.values()) if unit is None else [self._unit(unit)]

    def _refresh(self) -> None:
        for u in self.units.values():
            u.refresh(self._ticks)

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_period)
            self._ticks += 1
            for u in self.units.values():
                if not u.stale_heartbeat:
                    u.heartbeat = (u.heartbeat + 1) & 0xFFFF
                if u.running:
                    u.counter = (u.counter + 1) & 0x7FFFFFFF
                u.uptime += 1
            self._refresh()

    async def _up_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._up_timer = None
        with contextlib.suppress(SimulatorError):  # port taken meanwhile: stay down, status shows it
            await self.start_listening()

    def _cancel_timer(self) -> None:
        if self._up_timer is not None and self._up_timer is not asyncio.current_task():
            self._up_timer.cancel()
        self._up_timer = None
