"""Apply a fault request to a simulated device: maps each FaultSpec onto the device's methods.

For Modbus, `slow` is the gateway's `delay`; every other fault name is the device method of the same name.
"""

from __future__ import annotations

from simulators.fault_spec import FaultSpec, check_supported, firmware_version
from simulators.mes import MesServer
from simulators.modbus_plc import ModbusPlc
from simulators.opcua_plc import OpcUaPlc

Device = OpcUaPlc | ModbusPlc | MesServer


async def apply_fault(device: Device, spec: FaultSpec) -> None:
    """Inject `spec` into `device`. Raises SimulatorError when the device kind has no such fault."""
    check_supported(device.kind, spec)
    if spec.fault == "clear":
        await device.clear()
    elif spec.fault == "up":
        await device.up()
    elif spec.fault == "restart":
        await device.restart()
    elif isinstance(device, OpcUaPlc):
        await _apply_opcua(device, spec)
    elif isinstance(device, ModbusPlc):
        await _apply_modbus(device, spec)
    else:
        await _apply_mes(device, spec)


async def _apply_opcua(plc: OpcUaPlc, spec: FaultSpec) -> None:
    if spec.fault == "down":
        await plc.down(spec.seconds)
    elif spec.fault == "slow":
        await plc.slow(spec.ms or 0)
    elif spec.fault == "degraded":
        await plc.degraded(
            fault_code=1 if spec.fault_code is None else spec.fault_code,
            service_level=100 if spec.service_level is None else spec.service_level,
            stale_heartbeat=True if spec.stale_heartbeat is None else spec.stale_heartbeat,
            running=False if spec.running is None else spec.running,
        )
    elif spec.fault == "set_version":
        await plc.set_version(spec.version or "", spec.build)


async def _apply_modbus(plc: ModbusPlc, spec: FaultSpec) -> None:
    if spec.fault == "down":
        await plc.down(spec.seconds)
    elif spec.fault == "slow":
        await plc.delay(spec.ms or 0)
    elif spec.fault == "exception":
        await plc.exception(spec.code or 0, spec.unit)
    elif spec.fault == "drop_connections":
        await plc.drop_connections()
    elif spec.fault == "stop_listening":
        await plc.stop_listening()
    elif spec.fault == "start_listening":
        await plc.start_listening()
    elif spec.fault == "degraded":
        await plc.degraded(
            unit=spec.unit,
            fault_code=1 if spec.fault_code is None else spec.fault_code,
            stale_heartbeat=True if spec.stale_heartbeat is None else spec.stale_heartbeat,
            running=True if spec.running is None else spec.running,
        )
    elif spec.fault == "set_version":
        await plc.set_version(*firmware_version(spec.version or ""))


async def _apply_mes(mes: MesServer, spec: FaultSpec) -> None:
    if spec.fault == "down":
        await mes.down(spec.seconds, refuse=True if spec.refuse is None else spec.refuse)
    elif spec.fault == "slow":
        await mes.slow(spec.ms or 0)
    elif spec.fault == "degraded":
        await mes.degraded(spec.component or "database")
    elif spec.fault == "set_version":
        await mes.set_version(spec.version or "", spec.build)
