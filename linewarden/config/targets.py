"""Target (probe) configuration: one model per probe kind, selected by `type`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from linewarden.config.base import ConfigId, Duration, PositiveDuration, Secret, StrictModel
from linewarden.domain import State

Port = Annotated[int, Field(ge=1, le=65535)]


class Condition(StrictModel):
    """A health condition on one value. When it fails the target takes `fail_state`.

    `equals`, `min`/`max` and `must_change_within` may be combined; all must hold.
    """

    equals: float | int | str | bool | None = None
    not_equals: float | int | str | bool | None = None
    min: float | None = None
    max: float | None = None
    must_change_within: PositiveDuration | None = None
    fail_state: Literal[State.DEGRADED, State.DOWN] = State.DEGRADED

    @property
    def is_empty(self) -> bool:
        return (
            self.equals is None
            and self.not_equals is None
            and self.min is None
            and self.max is None
            and self.must_change_within is None
        )


class TargetBase(StrictModel):
    id: ConfigId
    asset: ConfigId
    description: str = ""
    interval: PositiveDuration | None = None
    timeout: PositiveDuration | None = None
    fail_threshold: Annotated[int, Field(ge=1, le=100)] | None = None
    recover_threshold: Annotated[int, Field(ge=1, le=100)] | None = None
    report_versions: bool = Field(
        default=False, description="send the versions it reads as version_observed events (the patch policy)"
    )


# ---------------------------------------------------------------- OPC UA


class OpcUaNode(StrictModel):
    name: ConfigId
    namespace_uri: str = Field(min_length=1, description="Namespace URI (not index: indexes change)")
    identifier: str = Field(pattern=r"^(i|s|g|b)=.+$", description="e.g. 's=Heartbeat' or 'i=1001'")
    condition: Condition = Condition()
    subscribe: bool = False


class AlarmSource(StrictModel):
    """A node whose alarms are watched (an object with EventNotifier set), named like OpcUaNode."""

    namespace_uri: str = Field(min_length=1)
    identifier: str = Field(pattern=r"^(i|s|g|b)=.+$")


class AlarmRule(StrictModel):
    """Alarms that put the target into `state`: all the rule's conditions must hold. `acknowledged` unset
    matches both; `active = false` matches an alarm whose cause is gone but that no one acknowledged yet."""

    state: Literal[State.DEGRADED, State.DOWN]
    min_severity: Annotated[int, Field(ge=1, le=1000)] = 1
    active: bool = True
    acknowledged: bool | None = None
    condition_name: str | None = Field(default=None, min_length=1, description="only alarms of this name")


class OpcUaAlarms(StrictModel):
    """Subscribe to the server's Alarms & Conditions; each alarm a rule matches sets the target's state, with
    the alarm's own message as the reason (the worst one when several match)."""

    sources: list[AlarmSource] = Field(
        default_factory=list, description="nodes to watch; none = the Server object (all alarms of the server)"
    )
    rules: list[AlarmRule] = Field(min_length=1)


OpcUaTrustMode = Literal["list", "tofu"]


class VersionNode(StrictModel):
    """A node holding a version as text, e.g. the DI model's SoftwareRevision or FirmwareRevision."""

    what: ConfigId = Field(description="the version's name, e.g. 'software_revision'")
    namespace_uri: str = Field(min_length=1)
    identifier: str = Field(pattern=r"^(i|s|g|b)=.+$")


class OpcUaTarget(TargetBase):
    type: Literal["opcua"]
    endpoint: str = Field(pattern=r"^opc\.tcp://.+")
    security_policy: Literal["None", "Basic256Sha256"] = "None"
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: Path | None = None
    private_key: Path | None = None
    server_certificate: Path | None = Field(default=None, description="the one certificate to accept (a pin)")
    trust_dir: Path | None = Field(
        default=None, description="trusted server certificates and CAs; default: [opcua] trust_dir"
    )
    trust: OpcUaTrustMode | None = Field(
        default=None, description="'tofu': pin the first certificate seen into trust_dir; default: [opcua] trust"
    )
    username: str | None = None
    password: Secret | None = None
    user_certificate: Path | None = Field(default=None, description="X.509 user token: certificate file")
    user_private_key: Path | None = Field(default=None, description="X.509 user token: its private key (PEM)")
    check_server_state: bool = True
    min_service_level: Annotated[int, Field(ge=0, le=255)] | None = 200
    build_info: bool = True
    nodes: list[OpcUaNode] = Field(default_factory=list)
    version_nodes: list[VersionNode] = Field(default_factory=list, max_length=16)
    alarms: OpcUaAlarms | None = None

    @model_validator(mode="after")
    def _security(self) -> OpcUaTarget:
        if self.security_policy == "None" and self.security_mode != "None":
            raise ValueError("security_mode needs a security_policy other than 'None'")
        if self.security_policy != "None":
            if self.security_mode == "None":
                raise ValueError(f"security_policy {self.security_policy} needs security_mode Sign or SignAndEncrypt")
            if self.certificate is None or self.private_key is None:
                raise ValueError("a security policy needs 'certificate' and 'private_key' files")
        if (self.user_certificate is None) != (self.user_private_key is None):
            raise ValueError("an X.509 user token needs both 'user_certificate' and 'user_private_key'")
        if self.user_certificate is not None and self.username is not None:
            raise ValueError("log in with 'username' or with 'user_certificate', not both")
        return self


# ---------------------------------------------------------------- Modbus

ModbusTable = Literal["holding", "input", "coil", "discrete"]
ModbusType = Literal["bool", "int16", "uint16", "int32", "uint32", "float32"]
Order = Literal["big", "little"]


class ModbusPoint(StrictModel):
    name: ConfigId
    unit: Annotated[int, Field(ge=0, le=255)] | None = None
    table: ModbusTable = "holding"
    address: Annotated[int, Field(ge=0, le=65535)]
    datatype: ModbusType = "uint16"
    byte_order: Order = "big"
    word_order: Order = "big"
    scale: float = 1.0
    condition: Condition = Condition()

    @model_validator(mode="after")
    def _bits(self) -> ModbusPoint:
        bit_table = self.table in ("coil", "discrete")
        if bit_table and self.datatype != "bool":
            raise ValueError(f"{self.table} points hold bits: datatype must be 'bool'")
        if not bit_table and self.datatype == "bool":
            raise ValueError(f"{self.table} registers hold words: datatype must not be 'bool'")
        return self


class VersionRegisters(StrictModel):
    """A register block holding a version as ASCII text, two characters a register, high byte first."""

    what: ConfigId = Field(description="the version's name, e.g. 'firmware'")
    unit: Annotated[int, Field(ge=0, le=255)] | None = None
    table: Literal["holding", "input"] = "holding"
    address: Annotated[int, Field(ge=0, le=65535)]
    count: Annotated[int, Field(ge=1, le=100)]


ModbusTransport = Literal["tcp", "rtu_over_tcp", "serial"]
Baudrate = Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200]
_LINE_SETTINGS = ("baudrate", "parity", "stopbits")


class ModbusTarget(TargetBase):
    """Modbus TCP to `host`:`port` (transport "tcp"), RTU frames over TCP to a serial device server
    ("rtu_over_tcp"), or RTU on a local serial port ("serial"). The RTU transports pace requests by the serial
    line's settings (`baudrate`, `parity`, `stopbits`; 8 data bits, as RTU requires)."""

    type: Literal["modbus"]
    transport: ModbusTransport = "tcp"
    host: str | None = Field(default=None, min_length=1)
    port: Port = 502
    serial_port: str | None = Field(default=None, min_length=1, description="e.g. '/dev/ttyUSB0' or 'COM3'")
    baudrate: Baudrate = 19200
    parity: Literal["N", "E", "O"] = Field(default="E", description="the Modbus serial line default is even")
    stopbits: Literal[1, 2] = 1
    unit: Annotated[int, Field(ge=0, le=255)] = 1
    max_registers_per_request: Annotated[int, Field(ge=1, le=125)] = 125
    max_bits_per_request: Annotated[int, Field(ge=1, le=2000)] = 2000
    max_gap: Annotated[int, Field(ge=0, le=125)] = 10
    pause_between_requests: Duration = timedelta(0)
    points: list[ModbusPoint] = Field(min_length=1)
    version_registers: list[VersionRegisters] = Field(default_factory=list, max_length=16)
    version_interval: PositiveDuration = Field(default=timedelta(minutes=5), description="how often to read them")

    @model_validator(mode="after")
    def _transport(self) -> ModbusTarget:
        if self.transport == "serial":
            if self.serial_port is None:
                raise ValueError("transport 'serial' needs 'serial_port' (e.g. '/dev/ttyUSB0' or 'COM3')")
            if self.host is not None or "port" in self.model_fields_set:
                raise ValueError("transport 'serial' takes 'serial_port', not 'host' and 'port'")
            return self
        if self.host is None:
            raise ValueError(f"transport '{self.transport}' needs 'host'")
        if self.serial_port is not None:
            raise ValueError(f"'serial_port' needs transport 'serial', not '{self.transport}'")
        given = [k for k in _LINE_SETTINGS if k in self.model_fields_set]
        if self.transport == "tcp" and given:
            raise ValueError(f"{', '.join(given)}: serial line settings need transport 'rtu_over_tcp' or 'serial'")
        return self

    @property
    def line(self) -> str:
        """Where the target's requests travel: targets on one line share its connection and its pace."""
        if self.transport == "serial":
            return f"serial {self.serial_port}"
        return f"{self.host}:{self.port}"

    @property
    def line_settings(self) -> str:
        """The line's transport and serial settings, e.g. 'serial 19200 8E1'."""
        if self.transport == "tcp":
            return "tcp"
        return f"{self.transport} {self.baudrate} 8{self.parity}{self.stopbits}"

    @model_validator(mode="after")
    def _fits_in_a_request(self) -> ModbusTarget:
        wide = [p.name for p in self.points if p.datatype in ("int32", "uint32", "float32")]
        if wide and self.max_registers_per_request < 2:
            raise ValueError(f"32-bit points ({', '.join(wide)}) need max_registers_per_request >= 2")
        return self


# ---------------------------------------------------------------- HTTP, TCP


class HttpTarget(TargetBase):
    type: Literal["http"]
    url: str = Field(pattern=r"^https?://.+")
    method: Literal["GET", "HEAD", "POST"] = "GET"
    expected_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(default_factory=lambda: [200])
    headers: dict[str, str | Secret] = Field(
        default_factory=dict, description="values that are secrets (tokens): { env = … } or { file = … }"
    )
    json_path: str | None = Field(default=None, description="dotted path into the JSON body, e.g. 'status'")
    condition: Condition = Condition()
    degraded_latency: PositiveDuration | None = None
    verify_tls: bool = True
    ca_file: Path | None = None
    version_url: str | None = Field(default=None, pattern=r"^https?://.+")
    version_json_path: str | None = None


class TcpTarget(TargetBase):
    type: Literal["tcp"]
    host: str
    port: Port
    degraded_latency: PositiveDuration | None = None


# ---------------------------------------------------------------- process, host, file age


class ProcessTarget(TargetBase):
    type: Literal["process"]
    name: str | None = None
    cmdline_contains: str | None = None
    service: str | None = Field(default=None, description="Windows service name (checked with psutil)")
    min_count: Annotated[int, Field(ge=1)] = 1

    @model_validator(mode="after")
    def _something(self) -> ProcessTarget:
        if self.name is None and self.cmdline_contains is None and self.service is None:
            raise ValueError("give 'name', 'cmdline_contains' or 'service'")
        return self


class DiskCheck(StrictModel):
    path: Path
    max_used_pct: Annotated[float, Field(gt=0, le=100)] = 90.0


class HostTarget(TargetBase):
    type: Literal["host"]
    max_cpu_pct: Annotated[float, Field(gt=0, le=100)] = 95.0
    max_memory_pct: Annotated[float, Field(gt=0, le=100)] = 95.0
    disks: list[DiskCheck] = Field(default_factory=list)


class FileAgeTarget(TargetBase):
    type: Literal["file_age"]
    pattern: str = Field(min_length=1, description="glob, e.g. 'D:/backup/*.bak'")
    max_age: PositiveDuration
    hash: bool = False


# ---------------------------------------------------------------- interface checks

JsonPointer = Annotated[str, Field(pattern=r"^(/[^/]*)+$", description="RFC 6901, e.g. '/interface/schema_version'")]


class InterfaceNode(StrictModel):
    namespace_uri: str = Field(min_length=1)
    identifier: str = Field(pattern=r"^(i|s|g|b)=.+$")


class InterfaceTarget(TargetBase):
    """An interface between systems (MES↔ERP↔PLC) checked against what the contract pins: the version an HTTP
    endpoint advertises (`url` + `version_pointer`), or an OPC UA node's DataType and EngineeringUnits
    (`endpoint` + `node`); and that values keep flowing: the last exchange (`last_exchange_pointer`, or the
    node's source timestamp) no older than `max_age`. A mismatch or a stall is DEGRADED with the reason."""

    type: Literal["interface"]
    url: str | None = Field(default=None, pattern=r"^https?://.+")
    headers: dict[str, str | Secret] = Field(default_factory=dict)
    verify_tls: bool = True
    ca_file: Path | None = None
    version_pointer: JsonPointer | None = None
    expected_version: str | None = Field(default=None, min_length=1)
    last_exchange_pointer: JsonPointer | None = Field(
        default=None, description="an ISO 8601 time, or seconds since the epoch"
    )
    endpoint: str | None = Field(default=None, pattern=r"^opc\.tcp://.+", description="unsecured session only")
    node: InterfaceNode | None = None
    expected_datatype: str | None = Field(default=None, min_length=1, description="e.g. 'Double'")
    expected_engineering_units: str | None = Field(default=None, min_length=1, description="e.g. 'bar'")
    max_age: PositiveDuration | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> InterfaceTarget:
        if (self.url is None) == (self.endpoint is None):
            raise ValueError("give 'url' (an HTTP interface) or 'endpoint' (an OPC UA one), not both or neither")
        if self.url is not None:
            if self.node is not None or self.expected_datatype or self.expected_engineering_units:
                raise ValueError("'node', 'expected_datatype' and 'expected_engineering_units' need 'endpoint'")
            if (self.version_pointer is None) != (self.expected_version is None):
                raise ValueError("'version_pointer' and 'expected_version' go together")
            if (self.max_age is None) != (self.last_exchange_pointer is None):
                raise ValueError("'max_age' and 'last_exchange_pointer' go together")
            if self.version_pointer is None and self.max_age is None:
                raise ValueError("check something: 'version_pointer' or 'last_exchange_pointer'")
            return self
        if self.node is None:
            raise ValueError("an OPC UA interface needs 'node'")
        if self.version_pointer or self.expected_version or self.last_exchange_pointer or self.headers:
            raise ValueError("'version_pointer', 'expected_version', 'last_exchange_pointer' and 'headers' need 'url'")
        if self.expected_datatype is None and self.expected_engineering_units is None and self.max_age is None:
            raise ValueError("check something: 'expected_datatype', 'expected_engineering_units' or 'max_age'")
        return self


TargetConfig = Annotated[
    OpcUaTarget | ModbusTarget | HttpTarget | TcpTarget | ProcessTarget | HostTarget | FileAgeTarget
    | InterfaceTarget,
    Field(discriminator="type"),
]
