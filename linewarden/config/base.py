"""Shared building blocks of the config models the agent loads: msgspec Structs, durations, zones, secrets.

The agent's models are msgspec Structs (no pydantic in the agent process); `linewarden.config.pydantic_base`
gives the collector's own pydantic models the same parsing through pydantic types. Values that TOML cannot
type (durations, times of day, paths) are custom types that `dec_hook` parses; checks across fields are
`__post_init__` methods, whose ValueError msgspec turns into a ValidationError at the Struct's path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec.structs import force_setattr

from linewarden.files import read_small
from linewarden.limits import ID_PATTERN
from linewarden.timeutil import format_duration, parse_duration


class StrictStruct(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Base of the Struct config models: frozen, unknown keys are an error."""


class FieldProblem(ValueError):
    """Raised in `__post_init__` for one field: the loader adds `key` to the Struct's key path."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key = key


def unset() -> Any:
    """The default of a field whose check needs to know whether the file gave it; `fill_defaults` fills it."""
    return msgspec.UNSET


def fill_defaults(struct: msgspec.Struct, **defaults: Any) -> set[str]:
    """Set each field of `defaults` still unset to its default; return the names the file gave."""
    given = set()
    for name, default in defaults.items():
        if getattr(struct, name) is msgspec.UNSET:
            force_setattr(struct, name, default)
        else:
            given.add(name)
    return given


# No duration in a config is longer: later arithmetic on times must never overflow.
MAX_DURATION = timedelta(days=36_525)  # 100 years
MAX_ZONE_NAME = 64  # the longest IANA name is 32 characters
MAX_SECRET_BYTES = 64 * 1024  # a password, token or database URL; more is not a secret file
DURATION_EXAMPLES = ["5s", "10m", "1h", "3d"]


def to_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return _check_bounded(value)
    if isinstance(value, bool):
        raise ValueError("a duration is a string like '5s', '10m', '1h', '3d'")
    if isinstance(value, int | float):
        raise ValueError(f"give a duration with its unit, e.g. '{value}s' (bare numbers are ambiguous)")
    if isinstance(value, str):
        return _check_bounded(parse_duration(value))
    raise ValueError("a duration is a string like '5s', '10m', '1h', '3d'")


def _check_bounded(value: timedelta) -> timedelta:
    if abs(value) > MAX_DURATION:
        raise ValueError("longer than 100 years")
    return value


def check_positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


if TYPE_CHECKING:
    # To a type checker a duration is the timedelta it holds.
    Duration = timedelta
    PositiveDuration = timedelta
else:

    class Duration(timedelta):
        """A duration written '5s', '10m', '1h', '3d' (at most 100 years)."""

        @classmethod
        def parse(cls, value: Any) -> Duration:
            d = to_duration(value)
            return cls(days=d.days, seconds=d.seconds, microseconds=d.microseconds)

    class PositiveDuration(Duration):
        """A duration longer than zero."""

        @classmethod
        def parse(cls, value: Any) -> PositiveDuration:
            d = check_positive(to_duration(value))
            return cls(days=d.days, seconds=d.seconds, microseconds=d.microseconds)


def dec_hook(kind: type, value: Any) -> Any:
    """Build the custom types of a Struct config model from TOML values (msgspec calls it for them)."""
    if kind is Path:
        if isinstance(value, str | Path):
            return Path(value)
        raise ValueError("a path is a string")
    parse: Callable[[Any], Any] | None = getattr(kind, "parse", None)
    if parse is None:
        raise NotImplementedError(kind)
    return parse(value)


def schema_hook(kind: type) -> dict[str, Any]:
    """The JSON schema of those custom types, for `linewarden config schema`."""
    if kind is Path:
        return {"type": "string"}
    if issubclass(kind, timedelta):
        return {"type": "string", "examples": DURATION_EXAMPLES}
    schema: dict[str, Any] | None = getattr(kind, "json_schema", None)
    if schema is None:
        raise NotImplementedError(kind)
    return schema


def check_zone(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a time zone is an IANA name such as 'Europe/Berlin'")
    shown = repr(value) if len(value) <= MAX_ZONE_NAME else f"{value[:MAX_ZONE_NAME]!r}… ({len(value)} characters)"
    problem = f"unknown time zone {shown} (use an IANA name such as 'Europe/Berlin')"
    if not value or len(value) > MAX_ZONE_NAME:
        raise ValueError(problem)
    try:
        ZoneInfo(value)
    # A directory of the zone database ("Europe") or a name the file system refuses is an OSError.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(problem) from None
    return value


def check_zone_field(key: str, value: str) -> None:
    """`check_zone` for a Struct's field, from its `__post_init__`."""
    try:
        check_zone(value)
    except ValueError as exc:
        raise FieldProblem(key, str(exc)) from None


ConfigId = Annotated[str, msgspec.Meta(pattern=ID_PATTERN, max_length=64)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]


class Secret(StrictStruct, frozen=True):
    """A secret named by where it lives, never its value: `env = "VAR"` or `file = "/path"`."""

    env: str | None = None
    file: Path | None = None

    def __post_init__(self) -> None:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' (an environment variable) or 'file' (a path)")

    def reveal(self) -> str:
        """Read the secret now. Raises ValueError naming the source (never the value) when it is absent."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise ValueError(f"environment variable {self.env} is not set")
            return value
        assert self.file is not None
        try:
            raw = read_small(self.file, MAX_SECRET_BYTES)
        except OSError as exc:
            raise ValueError(f"cannot read secret file {self.file}: {exc.strerror}") from None
        except ValueError as exc:
            raise ValueError(f"secret file {self.file}: {exc}") from None
        try:
            return raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise ValueError(f"secret file {self.file}: not UTF-8 text") from None

    def __repr__(self) -> str:
        return f"Secret(env={self.env!r})" if self.env else f"Secret(file={str(self.file)!r})"


class TlsConfig(StrictStruct, frozen=True):
    """TLS to the broker. The broker's certificate chain is always verified (against `ca_file`, or the system's
    trust store without it); `cert_file` + `key_file` present a client certificate (mutual TLS)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # false: accept a broker certificate issued for another host (chain still checked)
    verify_hostname: bool = True
    expiry_warning_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 30
    # how often certificate and key files are checked for changes
    reload_interval: PositiveDuration = timedelta(minutes=1)
    # Only to name the removed key in its error.
    insecure: bool | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        if self.insecure is not msgspec.UNSET:
            raise FieldProblem(
                "insecure",
                "'insecure' was removed: set verify_hostname = false to skip the host name check only "
                "(certificate chains are always verified)",
            )
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file (the client certificate it belongs to)")


MAX_BROKER_NODES = 16


def check_node(value: Any) -> str:
    """`host:port`, `host` (the `port` key's port) or `[v6 address]:port`; checked here, split by `split_node`."""
    if not isinstance(value, str) or not value:
        raise ValueError("a broker node is a string 'host:port'")
    if "://" in value:
        raise ValueError(f"{value!r}: give host:port without a scheme (TLS is set by [broker.tls])")
    if any(c.isspace() for c in value) or "/" in value:
        raise ValueError(f"{value!r} is not host:port")
    if value.count(":") > 1 and not value.startswith("["):
        raise ValueError(f"{value!r}: write an IPv6 address in brackets, e.g. '[::1]:1883'")
    host, port = split_node(value, 1)
    if not host:
        raise ValueError(f"{value!r} has no host")
    if port is None or not 1 <= port <= 65535:
        raise ValueError(f"{value!r}: the port must be a number from 1 to 65535")
    return value


def split_node(value: str, default_port: int) -> tuple[str, int | None]:
    """(host, port) of a broker node string; port None when it is not a number."""
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return "", None
        port_text = rest[1:] if rest else str(default_port)
    elif ":" in value:
        host, _, port_text = value.rpartition(":")
    else:
        host, port_text = value, str(default_port)
    return host, int(port_text) if port_text.isascii() and port_text.isdigit() else None


class BrokerConfig(StrictStruct, frozen=True):
    """How to reach the MQTT broker: one (`host`, `port`) or the nodes of a cluster (`nodes`), tried in turn."""

    host: str = unset()  # default 127.0.0.1
    port: Port = 1883
    # the nodes of a broker cluster as 'host:port' (a bare host takes `port`); instead of `host`
    nodes: Annotated[list[str], msgspec.Meta(min_length=1, max_length=MAX_BROKER_NODES)] | None = None
    # with `nodes`: how long one attempt waits for the broker's CONNACK before trying the next node
    connect_timeout: PositiveDuration = timedelta(seconds=10)
    # with `nodes`: the longest wait after every node failed in turn (1 s, doubling, jittered)
    round_wait_max: PositiveDuration = timedelta(seconds=30)
    client_id: str | None = None
    username: str | None = None
    password: Secret | None = None
    tls: TlsConfig | None = None
    keepalive: PositiveDuration = timedelta(seconds=30)
    protocol: Annotated[str, msgspec.Meta(pattern=r"^(3\.1\.1|5)$")] = "3.1.1"

    def __post_init__(self) -> None:
        given = fill_defaults(self, host="127.0.0.1")
        if self.nodes is None:
            return
        for i, node in enumerate(self.nodes):
            try:
                check_node(node)
            except ValueError as exc:
                raise FieldProblem(f"nodes[{i}]", str(exc)) from None
        if "host" in given:
            raise ValueError("give either 'host' (one broker) or 'nodes' (a cluster), not both")
        seen: set[tuple[str, int]] = set()
        for node_ in self.endpoints():
            if node_ in seen:
                raise ValueError(f"nodes: {node_[0]}:{node_[1]} is listed twice")
            seen.add(node_)

    def shown(self) -> str:
        """The broker or the cluster's nodes, for messages: `host:port` or `host:port, host:port, …`."""
        return ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.endpoints())

    def endpoints(self) -> list[tuple[str, int]]:
        """(host, port) of each broker to try, in order."""
        if self.nodes is None:
            return [(self.host, self.port)]
        found = []
        for node in self.nodes:
            host, port = split_node(node, self.port)
            assert port is not None  # checked by check_node
            found.append((host, port))
        return found


def to_builtins(struct: msgspec.Struct) -> Any:
    """A Struct as the values a config file gives: durations as '5s', paths and times of day as strings."""

    def spelled(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: spelled(v) for k, v in value.items()}
        if isinstance(value, list):
            return [spelled(v) for v in value]
        if isinstance(value, timedelta):
            return format_duration(value)
        if isinstance(value, Path | time):
            return str(value)
        return value

    def plain(value: Any) -> Any:
        """A parsed Duration or TimeOfDay as the plain timedelta or time that a default is."""
        if isinstance(value, timedelta):
            return timedelta(value.days, value.seconds, value.microseconds)
        if isinstance(value, time):
            return time(value.hour, value.minute, value.second, value.microsecond, value.tzinfo, fold=value.fold)
        if isinstance(value, Path):
            return str(value)
        raise NotImplementedError(type(value))

    return spelled(msgspec.to_builtins(struct, builtin_types=(timedelta, time), enc_hook=plain))
