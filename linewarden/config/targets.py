"""Target (probe) configuration: one Struct per probe kind, selected by its tag `type`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from msgspec import Meta, field

from linewarden.config.base import (
    ConfigId,
    Duration,
    FieldProblem,
    Port,
    PositiveDuration,
    Secret,
    StrictStruct,
    fill_defaults,
    unset,
)
from linewarden.domain import State

NodeId = Annotated[str, Meta(pattern=r"^(i|s|g|b)=.+$", description="e.g. 's=Heartbeat' or 'i=1001'")]
NonEmpty = Annotated[str, Meta(min_length=1)]
Url = Annotated[str, Meta(pattern=r"^https?://.+")]
OpcUaEndpoint = Annotated[str, Meta(pattern=r"^opc\.tcp://.+")]


def _check_fail_state(key: str, state: State) -> None:
    if state not in (State.DEGRADED, State.DOWN):
        raise FieldProblem(key, f"{state.value!r}: a failing condition sets 'DEGRADED' or 'DOWN'")


class Condition(StrictStruct, frozen=True):
    """A health condition on one value. When it fails the target takes `fail_state`.

    `equals`, `min`/`max` and `must_change_within` may be combined; all must hold.
    """

    equals: float | int | str | bool | None = None
    not_equals: float | int | str | bool | None = None
    min: float | None = None
    max: float | None = None
    must_change_within: PositiveDuration | None = None
    fail_state: State = State.DEGRADED  # degraded or down

    def __post_init__(self) -> None:
        _check_fail_state("fail_state", self.fail_state)

    @property
    def is_empty(self) -> bool:
        return (
            self.equals is None
            and self.not_equals is None
            and self.min is None
            and self.max is None
            and self.must_change_within is None
        )


class TargetBase(StrictStruct, frozen=True, tag_field="type"):
    type: ClassVar[str]  # the kind of probe, the tag of the target's table
    id: ConfigId
    asset: ConfigId
    description: str = ""
    interval: PositiveDuration | None = None
    timeout: PositiveDuration | None = None
    fail_threshold: Annotated[int, Meta(ge=1, le=100)] | None = None
    recover_threshold: Annotated[int, Meta(ge=1, le=100)] | None = None
    # send the versions it reads as version_observed events (the patch policy)
    report_versions: bool = False


# ---------------------------------------------------------------- OPC UA


class OpcUaNode(StrictStruct, frozen=True):
    name: ConfigId
    namespace_uri: Annotated[str, Meta(min_length=1, description="Namespace URI (not index: indexes change)")]
    identifier: NodeId
    condition: Condition = Condition()
    subscribe: bool = False


class AlarmSource(StrictStruct, frozen=True):
    """A node whose alarms are watched (an object with EventNotifier set), named like OpcUaNode."""

    namespace_uri: NonEmpty
    identifier: NodeId


class AlarmRule(StrictStruct, frozen=True):
    """Alarms that put the target into `state`: all the rule's conditions must hold. `acknowledged` unset
    matches both; `active = false` matches an alarm whose cause is gone but that no one acknowledged yet."""

    state: State  # degraded or down
    min_severity: Annotated[int, Meta(ge=1, le=1000)] = 1
    active: bool = True
    acknowledged: bool | None = None
    condition_name: NonEmpty | None = None  # only alarms of this name

    def __post_init__(self) -> None:
        _check_fail_state("state", self.state)


class OpcUaAlarms(StrictStruct, frozen=True):
    """Subscribe to the server's Alarms & Conditions; each alarm a rule matches sets the target's state, with
    the alarm's own message as the reason (the worst one when several match)."""

    rules: Annotated[list[AlarmRule], Meta(min_length=1)]
    # nodes to watch; none = the Server object (all alarms of the server)
    sources: list[AlarmSource] = field(default_factory=list)


OpcUaTrustMode = Literal["list", "tofu"]


class VersionNode(StrictStruct, frozen=True):
    """A node holding a version as text, e.g. the DI model's SoftwareRevision or FirmwareRevision."""

    what: ConfigId  # the version's name, e.g. 'software_revision'
    namespace_uri: NonEmpty
    identifier: NodeId


class OpcUaTarget(TargetBase, frozen=True, tag="opcua", kw_only=True):
    type: ClassVar[str] = "opcua"
    endpoint: OpcUaEndpoint
    security_policy: Literal["None", "Basic256Sha256"] = "None"
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: Path | None = None
    private_key: Path | None = None
    server_certificate: Path | None = None  # the one certificate to accept (a pin)
    trust_dir: Path | None = None  # trusted server certificates and CAs; default: [opcua] trust_dir
    trust: OpcUaTrustMode | None = None  # 'tofu': pin the first certificate seen into trust_dir; default: [opcua] trust
    username: str | None = None
    password: Secret | None = None
    user_certificate: Path | None = None  # X.509 user token: certificate file
    user_private_key: Path | None = None  # X.509 user token: its private key (PEM)
    check_server_state: bool = True
    min_service_level: Annotated[int, Meta(ge=0, le=255)] | None = 200
    build_info: bool = True
    nodes: list[OpcUaNode] = field(default_factory=list)
    version_nodes: Annotated[list[VersionNode], Meta(max_length=16)] = field(default_factory=list)
    alarms: OpcUaAlarms | None = None

    def __post_init__(self) -> None:
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


# ---------------------------------------------------------------- Modbus

ModbusTable = Literal["holding", "input", "coil", "discrete"]
ModbusType = Literal["bool", "int16", "uint16", "int32", "uint32", "float32"]
Order = Literal["big", "little"]


class ModbusPoint(StrictStruct, frozen=True, kw_only=True):
    name: ConfigId
    unit: Annotated[int, Meta(ge=0, le=255)] | None = None
    table: ModbusTable = "holding"
    address: Annotated[int, Meta(ge=0, le=65535)]
    datatype: ModbusType = "uint16"
    byte_order: Order = "big"
    word_order: Order = "big"
    scale: float = 1.0
    condition: Condition = Condition()

    def __post_init__(self) -> None:
        bit_table = self.table in ("coil", "discrete")
        if bit_table and self.datatype != "bool":
            raise ValueError(f"{self.table} points hold bits: datatype must be 'bool'")
        if not bit_table and self.datatype == "bool":
            raise ValueError(f"{self.table} registers hold words: datatype must not be 'bool'")


class VersionRegisters(StrictStruct, frozen=True, kw_only=True):
    """A register block holding a version as ASCII text, two characters a register, high byte first."""

    what: ConfigId  # the version's name, e.g. 'firmware'
    unit: Annotated[int, Meta(ge=0, le=255)] | None = None
    table: Literal["holding", "input"] = "holding"
    address: Annotated[int, Meta(ge=0, le=65535)]
    count: Annotated[int, Meta(ge=1, le=100)]


ModbusTransport = Literal["tcp", "rtu_over_tcp", "serial"]
Baudrate = Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200]
_LINE_SETTINGS = ("baudrate", "parity", "stopbits")


class ModbusTarget(TargetBase, frozen=True, tag="modbus", kw_only=True):
    """Modbus TCP to `host`:`port` (transport "tcp"), RTU frames over TCP to a serial device server
    ("rtu_over_tcp"), or RTU on a local serial port ("serial"). The RTU transports pace requests by the serial
    line's settings (`baudrate`, `parity`, `stopbits`; 8 data bits, as RTU requires)."""

    type: ClassVar[str] = "modbus"
    transport: ModbusTransport = "tcp"
    host: NonEmpty | None = None
    port: Port = unset()  # default 502
    serial_port: NonEmpty | None = None  # e.g. '/dev/ttyUSB0' or 'COM3'
    baudrate: Baudrate = unset()  # default 19200
    parity: Literal["N", "E", "O"] = unset()  # default E: the Modbus serial line default is even
    stopbits: Literal[1, 2] = unset()  # default 1
    unit: Annotated[int, Meta(ge=0, le=255)] = 1
    max_registers_per_request: Annotated[int, Meta(ge=1, le=125)] = 125
    max_bits_per_request: Annotated[int, Meta(ge=1, le=2000)] = 2000
    max_gap: Annotated[int, Meta(ge=0, le=125)] = 10
    pause_between_requests: Duration = timedelta(0)
    points: Annotated[list[ModbusPoint], Meta(min_length=1)]
    version_registers: Annotated[list[VersionRegisters], Meta(max_length=16)] = field(default_factory=list)
    version_interval: PositiveDuration = timedelta(minutes=5)  # how often to read them

    def __post_init__(self) -> None:
        given = fill_defaults(self, port=502, baudrate=19200, parity="E", stopbits=1)
        self._check_transport(given)
        wide = [p.name for p in self.points if p.datatype in ("int32", "uint32", "float32")]
        if wide and self.max_registers_per_request < 2:
            raise ValueError(f"32-bit points ({', '.join(wide)}) need max_registers_per_request >= 2")

    def _check_transport(self, given: set[str]) -> None:
        if self.transport == "serial":
            if self.serial_port is None:
                raise ValueError("transport 'serial' needs 'serial_port' (e.g. '/dev/ttyUSB0' or 'COM3')")
            if self.host is not None or "port" in given:
                raise ValueError("transport 'serial' takes 'serial_port', not 'host' and 'port'")
            return
        if self.host is None:
            raise ValueError(f"transport '{self.transport}' needs 'host'")
        if self.serial_port is not None:
            raise ValueError(f"'serial_port' needs transport 'serial', not '{self.transport}'")
        line_settings = [k for k in _LINE_SETTINGS if k in given]
        if self.transport == "tcp" and line_settings:
            raise ValueError(
                f"{', '.join(line_settings)}: serial line settings need transport 'rtu_over_tcp' or 'serial'"
            )

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


# ---------------------------------------------------------------- HTTP, TCP


class HttpTarget(TargetBase, frozen=True, tag="http", kw_only=True):
    type: ClassVar[str] = "http"
    url: Url
    method: Literal["GET", "HEAD", "POST"] = "GET"
    expected_status: list[Annotated[int, Meta(ge=100, le=599)]] = field(default_factory=lambda: [200])
    headers: dict[str, str | Secret] = field(
        default_factory=dict
    )  # values that are secrets (tokens): { env = … } or { file = … }
    json_path: str | None = None  # dotted path into the JSON body, e.g. 'status'
    condition: Condition = Condition()
    degraded_latency: PositiveDuration | None = None
    verify_tls: bool = True
    ca_file: Path | None = None
    version_url: Url | None = None
    version_json_path: str | None = None


class TcpTarget(TargetBase, frozen=True, tag="tcp", kw_only=True):
    type: ClassVar[str] = "tcp"
    host: str
    port: Port
    degraded_latency: PositiveDuration | None = None


# ---------------------------------------------------------------- process, host, file age


class ProcessTarget(TargetBase, frozen=True, tag="process", kw_only=True):
    type: ClassVar[str] = "process"
    name: str | None = None
    cmdline_contains: str | None = None
    service: str | None = None  # Windows service name (checked with psutil)
    min_count: Annotated[int, Meta(ge=1)] = 1

    def __post_init__(self) -> None:
        if self.name is None and self.cmdline_contains is None and self.service is None:
            raise ValueError("give 'name', 'cmdline_contains' or 'service'")


class DiskCheck(StrictStruct, frozen=True):
    path: Path
    max_used_pct: Annotated[float, Meta(gt=0, le=100)] = 90.0


class HostTarget(TargetBase, frozen=True, tag="host", kw_only=True):
    type: ClassVar[str] = "host"
    max_cpu_pct: Annotated[float, Meta(gt=0, le=100)] = 95.0
    max_memory_pct: Annotated[float, Meta(gt=0, le=100)] = 95.0
    disks: list[DiskCheck] = field(default_factory=list)


class FileAgeTarget(TargetBase, frozen=True, tag="file_age", kw_only=True):
    type: ClassVar[str] = "file_age"
    pattern: Annotated[str, Meta(min_length=1, description="glob, e.g. 'D:/backup/*.bak'")]
    max_age: PositiveDuration
    hash: bool = False


# ---------------------------------------------------------------- interface checks

JsonPointer = Annotated[str, Meta(pattern=r"^(/[^/]*)+$", description="RFC 6901, e.g. '/interface/schema_version'")]


class InterfaceNode(StrictStruct, frozen=True):
    namespace_uri: NonEmpty
    identifier: NodeId


class InterfaceTarget(TargetBase, frozen=True, tag="interface", kw_only=True):
    """An interface between systems (MES↔ERP↔PLC) checked against what the contract pins: the version an HTTP
    endpoint advertises (`url` + `version_pointer`), or an OPC UA node's DataType and EngineeringUnits
    (`endpoint` + `node`); and that values keep flowing: the last exchange (`last_exchange_pointer`, or the
    node's source timestamp) no older than `max_age`. A mismatch or a stall is DEGRADED with the reason."""

    type: ClassVar[str] = "interface"
    url: Url | None = None
    headers: dict[str, str | Secret] = field(default_factory=dict)
    verify_tls: bool = True
    ca_file: Path | None = None
    version_pointer: JsonPointer | None = None
    expected_version: NonEmpty | None = None
    last_exchange_pointer: JsonPointer | None = None  # an ISO 8601 time, or seconds since the epoch
    endpoint: OpcUaEndpoint | None = None  # unsecured session only
    node: InterfaceNode | None = None
    expected_datatype: NonEmpty | None = None  # e.g. 'Double'
    expected_engineering_units: NonEmpty | None = None  # e.g. 'bar'
    max_age: PositiveDuration | None = None

    def __post_init__(self) -> None:
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
            return
        if self.node is None:
            raise ValueError("an OPC UA interface needs 'node'")
        if self.version_pointer or self.expected_version or self.last_exchange_pointer or self.headers:
            raise ValueError("'version_pointer', 'expected_version', 'last_exchange_pointer' and 'headers' need 'url'")
        if self.expected_datatype is None and self.expected_engineering_units is None and self.max_age is None:
            raise ValueError("check something: 'expected_datatype', 'expected_engineering_units' or 'max_age'")


# msgspec picks the model by the `type` key (the Structs' tag).
TargetConfig = (
    OpcUaTarget | ModbusTarget | HttpTarget | TcpTarget | ProcessTarget | HostTarget | FileAgeTarget | InterfaceTarget
)
