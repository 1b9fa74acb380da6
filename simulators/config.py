"""Config files of the simulators: the plant file (which devices to run) and scenario files (fault timelines).

A plant file has a `[plant]` table and `[[device]]` tables (kind opcua, modbus or mes); a scenario file has a
`[scenario]` table and `[[step]]` tables. `linewarden config check` validates both through `SIM_KINDS`,
`detect_sim_kind` and `check_sim_file`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from linewarden.config.load import load, read_toml, validate
from linewarden.config.pydantic_base import ConfigId, Duration, PositiveDuration, StrictModel
from linewarden.errors import ConfigError
from simulators.fault_spec import FaultSpec

Port = Annotated[int, Field(ge=0, le=65535, description="TCP port; 0 picks a free one")]


class PlantSection(StrictModel):
    name: ConfigId
    host: str = "127.0.0.1"
    control_port: Port = 8790


class OpcUaDevice(StrictModel):
    kind: Literal["opcua"]
    name: ConfigId
    port: Port
    namespace_uri: str = Field(default="urn:linewarden:sim:plc", min_length=1)
    software_version: str = "1.0.0"
    build_number: str = "100"
    heartbeat_period: PositiveDuration = timedelta(seconds=1)
    max_nodes_per_read: Annotated[int, Field(ge=0)] = 0
    shift_namespace: bool = False


class ModbusDevice(StrictModel):
    kind: Literal["modbus"]
    name: ConfigId
    port: Port
    units: list[Annotated[int, Field(ge=1, le=247)]] = Field(default_factory=lambda: [1, 2, 3], min_length=1)
    word_order: Literal["big", "little"] = "big"
    heartbeat_period: PositiveDuration = timedelta(seconds=1)
    firmware: str = Field(default="1.0", pattern=r"^\d{1,5}\.\d{1,5}$", description="major.minor")


class MesDevice(StrictModel):
    kind: Literal["mes"]
    name: ConfigId
    port: Port
    version: str = "5.2.0"
    build: str = "5200"
    components: list[ConfigId] = Field(default_factory=lambda: ["database", "queue", "scheduler"], min_length=1)
    keep_alive: bool = False


DeviceConfig = Annotated[OpcUaDevice | ModbusDevice | MesDevice, Field(discriminator="kind")]


class PlantConfig(StrictModel):
    """A simulated plant: the devices `linewarden sim plant` runs, and its control API port."""

    plant: PlantSection
    device: list[DeviceConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> PlantConfig:
        names = [d.name for d in self.device]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"device names must be unique: {', '.join(dupes)}")
        ports = [d.port for d in self.device if d.port] + ([self.plant.control_port] if self.plant.control_port else [])
        clash = sorted({p for p in ports if ports.count(p) > 1})
        if clash:
            raise ValueError(f"two listeners on port {', '.join(map(str, clash))}")
        return self


class ScenarioSection(StrictModel):
    name: ConfigId
    description: str = ""


# what ends a fault given with `until`
_REVERT = {"down": "up", "slow": "slow", "degraded": "clear", "exception": "clear", "stop_listening": "start_listening"}


class Step(FaultSpec):
    """At scenario time `at`, inject a fault into `device`; with `until`, undo it then."""

    at: Duration
    device: ConfigId
    until: PositiveDuration | None = None

    @model_validator(mode="after")
    def _window(self) -> Step:
        if self.at < timedelta(0):
            raise ValueError("'at' must not be negative")
        if self.until is None:
            return self
        if self.fault not in _REVERT:
            raise ValueError(f"'until' applies to {', '.join(_REVERT)}, not to {self.fault!r}")
        if self.until <= self.at:
            raise ValueError("'until' must be later than 'at'")
        if self.seconds is not None:
            raise ValueError("give either 'seconds' or 'until', not both")
        return self

    def fault_spec(self) -> FaultSpec:
        return FaultSpec.model_validate(self.model_dump(exclude={"at", "device", "until"}, exclude_none=True))

    def revert_spec(self) -> FaultSpec | None:
        """The fault that ends this one at `until`, or None when the step has no `until`."""
        if self.until is None:
            return None
        name = _REVERT[self.fault]
        return FaultSpec(fault="slow", ms=0) if name == "slow" else FaultSpec.model_validate({"fault": name})


class ScenarioConfig(StrictModel):
    """A timeline of faults against the named devices of a plant."""

    scenario: ScenarioSection
    step: list[Step] = Field(min_length=1)


SIM_KINDS: dict[str, type[BaseModel]] = {"plant": PlantConfig, "scenario": ScenarioConfig}


def detect_sim_kind(data: dict[str, Any], source: str = "<config>") -> str:
    """The simulator kind named by the file's top-level table; ConfigError naming `source` when neither."""
    found = [kind for kind in SIM_KINDS if kind in data]
    if len(found) != 1:
        raise ConfigError(
            source,
            "",
            "cannot tell the kind of file: expected one top-level table of [agent], [collector], [contract], "
            "[calendar], [plant] or [scenario]",
        )
    return found[0]


def check_sim_file(path: Path, kind: str) -> None:
    """Validate a plant or scenario file. Raises ConfigError naming file, key and problem."""
    validate(SIM_KINDS[kind], read_toml(path), str(path))


def load_plant(path: Path | str) -> PlantConfig:
    return load(PlantConfig, path)


def load_scenario(path: Path | str) -> ScenarioConfig:
    return load(ScenarioConfig, path)
