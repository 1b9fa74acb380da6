"""A simulated plant: the devices of a plant file, started and stopped together, faults addressed by name."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Protocol

from linewarden.errors import SimulatorError
from simulators.config import DeviceConfig, MesDevice, ModbusDevice, OpcUaDevice, PlantConfig
from simulators.fault_spec import FaultSpec
from simulators.faults import Device, apply_fault
from simulators.lifecycle import AsyncService
from simulators.mes import MesServer
from simulators.modbus_plc import ModbusPlc
from simulators.opcua_plc import OpcUaPlc


class FaultTarget(Protocol):
    """Where a scenario sends its faults: a Plant in this process, or a running plant's control API."""

    async def device_kinds(self) -> dict[str, str]: ...

    async def apply(self, device: str, spec: FaultSpec) -> None: ...


def build_device(config: DeviceConfig, host: str) -> Device:
    if isinstance(config, OpcUaDevice):
        return OpcUaPlc(
            config.name,
            host=host,
            port=config.port,
            namespace_uri=config.namespace_uri,
            software_version=config.software_version,
            build_number=config.build_number,
            heartbeat_period=config.heartbeat_period.total_seconds(),
            max_nodes_per_read=config.max_nodes_per_read,
            shift_namespace=config.shift_namespace,
        )
    if isinstance(config, ModbusDevice):
        major, minor = config.firmware.split(".")
        return ModbusPlc(
            config.name,
            host=host,
            port=config.port,
            units=config.units,
            word_order=config.word_order,
            heartbeat_period=config.heartbeat_period.total_seconds(),
            firmware=(int(major), int(minor)),
        )
    assert isinstance(config, MesDevice)
    return MesServer(
        config.name,
        host=host,
        port=config.port,
        version=config.version,
        build=config.build,
        components=tuple(config.components),
        keep_alive=config.keep_alive,
    )


class Plant(AsyncService):
    """Several simulated devices. `async with Plant.from_config(cfg) as plant: await plant.apply(...)`."""

    def __init__(self, devices: Iterable[Device], name: str = "plant") -> None:
        self.name = name
        self.devices: dict[str, Device] = {}
        for device in devices:
            if device.name in self.devices:
                raise SimulatorError(f"two devices named {device.name!r}")
            self.devices[device.name] = device

    @classmethod
    def from_config(cls, config: PlantConfig) -> Plant:
        return cls((build_device(d, config.plant.host) for d in config.device), name=config.plant.name)

    def device(self, name: str) -> Device:
        try:
            return self.devices[name]
        except KeyError:
            raise SimulatorError(f"no device {name!r} in plant {self.name} (it has {sorted(self.devices)})") from None

    async def start(self) -> None:
        results = await asyncio.gather(*(d.start() for d in self.devices.values()), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            await self.stop()
            raise SimulatorError(f"plant {self.name} did not start: {failed[0]}")

    async def stop(self) -> None:
        await asyncio.gather(*(d.stop() for d in self.devices.values()), return_exceptions=True)

    async def device_kinds(self) -> dict[str, str]:
        return {name: d.kind for name, d in self.devices.items()}

    async def apply(self, device: str, spec: FaultSpec) -> None:
        await apply_fault(self.device(device), spec)

    def status(self) -> list[dict[str, Any]]:
        return [d.status() for d in self.devices.values()]
