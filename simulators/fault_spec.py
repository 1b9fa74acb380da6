"""Fault requests: one validated model shared by the control API and scenario files, and which device kinds
take which faults.

A fault is a name plus the parameters that name takes, e.g. `{"fault": "down", "seconds": 45}`.
Pure data: validating a scenario file does not load the OPC UA or Modbus libraries.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from linewarden.config.pydantic_base import StrictModel
from linewarden.errors import SimulatorError

FaultName = Literal[
    "down",
    "up",
    "slow",
    "degraded",
    "exception",
    "drop_connections",
    "stop_listening",
    "start_listening",
    "set_version",
    "restart",
    "clear",
]

# parameters each fault accepts, and those it needs
_PARAMS: dict[str, frozenset[str]] = {
    "down": frozenset({"seconds", "refuse"}),
    "slow": frozenset({"ms"}),
    "degraded": frozenset({"fault_code", "service_level", "stale_heartbeat", "running", "component", "unit"}),
    "exception": frozenset({"code", "unit"}),
    "set_version": frozenset({"version", "build"}),
}
_ALL_PARAMS = frozenset().union(*_PARAMS.values())
_REQUIRED: dict[str, frozenset[str]] = {
    "slow": frozenset({"ms"}),
    "exception": frozenset({"code"}),
    "set_version": frozenset({"version"}),
}
_COMMON = frozenset({"down", "up", "slow", "degraded", "set_version", "restart", "clear"})
FAULTS_BY_KIND: dict[str, frozenset[str]] = {
    "opcua": _COMMON,
    "modbus": _COMMON | {"exception", "drop_connections", "stop_listening", "start_listening"},
    "mes": _COMMON,
}


class FaultSpec(StrictModel):
    """One fault to inject. Parameters that the fault does not take are an error."""

    fault: FaultName
    seconds: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="down: how long (omit: until 'up' or 'clear')"
    )
    refuse: bool | None = Field(default=None, description="MES down: refuse connections (default) or answer 503")
    ms: Annotated[int, Field(ge=0, le=600_000)] | None = Field(default=None, description="slow: added latency")
    code: Annotated[int, Field(ge=1, le=255)] | None = Field(default=None, description="Modbus exception code")
    unit: Annotated[int, Field(ge=1, le=247)] | None = Field(default=None, description="Modbus unit (omit: all)")
    fault_code: Annotated[int, Field(ge=0, le=65535)] | None = None
    service_level: Annotated[int, Field(ge=0, le=255)] | None = None
    stale_heartbeat: bool | None = None
    running: bool | None = None
    component: str | None = Field(default=None, description="MES degraded: which component")
    version: str | None = Field(default=None, min_length=1, description="set_version: software version")
    build: str | None = Field(default=None, description="set_version: build number (OPC UA, MES)")

    @model_validator(mode="after")
    def _params_fit(self) -> FaultSpec:
        given = {name for name in _ALL_PARAMS if getattr(self, name) is not None}
        allowed = _PARAMS.get(self.fault, frozenset())
        extra = sorted(given - allowed)
        if extra:
            takes = ", ".join(sorted(allowed)) or "no parameters"
            raise ValueError(f"fault {self.fault!r} does not take {', '.join(extra)} (it takes {takes})")
        missing = sorted(_REQUIRED.get(self.fault, frozenset()) - given)
        if missing:
            raise ValueError(f"fault {self.fault!r} needs {', '.join(missing)}")
        return self

    def describe(self) -> str:
        params = {name: getattr(self, name) for name in sorted(_ALL_PARAMS) if getattr(self, name) is not None}
        return " ".join([self.fault, *(f"{k}={v}" for k, v in params.items())])


def check_supported(kind: str, spec: FaultSpec) -> None:
    """Raise SimulatorError unless a device of `kind` can take `spec` as given."""
    if spec.fault not in FAULTS_BY_KIND[kind]:
        raise SimulatorError(
            f"a {kind} device has no fault {spec.fault!r} (it has {', '.join(sorted(FAULTS_BY_KIND[kind]))})"
        )
    not_for_kind = {
        ("degraded", "opcua"): ("component", "unit"),
        ("degraded", "modbus"): ("component", "service_level"),
        ("degraded", "mes"): ("fault_code", "service_level", "stale_heartbeat", "running", "unit"),
        ("set_version", "modbus"): ("build",),
        ("down", "opcua"): ("refuse",),
        ("down", "modbus"): ("refuse",),
    }.get((spec.fault, kind), ())
    given = [name for name in not_for_kind if getattr(spec, name) is not None]
    if given:
        raise SimulatorError(f"{spec.fault!r} on a {kind} device does not take {', '.join(given)}")
    if kind == "modbus" and spec.fault == "set_version":
        firmware_version(spec.version or "")


def firmware_version(version: str) -> tuple[int, int]:
    """A Modbus firmware version 'major.minor' as two integers."""
    major, _, minor = version.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        raise SimulatorError(f"a Modbus firmware version is 'major.minor' (two integers), not {version!r}")
    return int(major), int(minor)
