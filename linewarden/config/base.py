"""Shared building blocks of every config model: the strict base, durations, zones, secrets."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

from linewarden.files import read_small
from linewarden.timeutil import format_duration, parse_duration
from linewarden.wire import ID_PATTERN


class StrictModel(BaseModel):
    """Base of all config models: frozen, unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# No duration in a config is longer: later arithmetic on times must never overflow.
MAX_DURATION = timedelta(days=36_525)  # 100 years
MAX_ZONE_NAME = 64  # the longest IANA name is 32 characters
MAX_SECRET_BYTES = 64 * 1024  # a password, token or database URL; more is not a secret file


def _to_duration(value: Any) -> timedelta:
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


def _check_positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    Field(json_schema_extra={"type": "string", "examples": ["5s", "10m", "1h", "3d"]}),
]
PositiveDuration = Annotated[Duration, BeforeValidator(lambda v: _check_positive(_to_duration(v)))]


def _check_zone(value: Any) -> str:
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


TimeZoneName = Annotated[str, BeforeValidator(_check_zone)]
ConfigId = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]


class Secret(StrictModel):
    """A secret named by where it lives, never its value: `env = "VAR"` or `file = "/path"`."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Secret:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' (an environment variable) or 'file' (a path)")
        return self

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


class TlsConfig(StrictModel):
    """TLS to the broker. The broker's certificate chain is always verified (against `ca_file`, or the system's
    trust store without it); `cert_file` + `key_file` present a client certificate (mutual TLS)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    verify_hostname: bool = Field(
        default=True, description="false: accept a broker certificate issued for another host (chain still checked)"
    )
    expiry_warning_days: Annotated[int, Field(ge=1, le=3650)] = 30
    reload_interval: PositiveDuration = Field(
        default=timedelta(minutes=1), description="how often certificate and key files are checked for changes"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_insecure(cls, data: Any) -> Any:
        if isinstance(data, dict) and "insecure" in data:
            raise ValueError(
                "'insecure' was removed: set verify_hostname = false to skip the host name check only "
                "(certificate chains are always verified)"
            )
        return data

    @model_validator(mode="after")
    def _pairs(self) -> TlsConfig:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file (the client certificate it belongs to)")
        return self


MAX_BROKER_NODES = 16


def _check_node(value: Any) -> str:
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


BrokerNode = Annotated[str, BeforeValidator(_check_node), Field(examples=["mqtt-1.example.com:8883"])]


class BrokerConfig(StrictModel):
    """How to reach the MQTT broker: one (`host`, `port`) or the nodes of a cluster (`nodes`), tried in turn."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    nodes: Annotated[list[BrokerNode], Field(min_length=1, max_length=MAX_BROKER_NODES)] | None = Field(
        default=None,
        description="the nodes of a broker cluster as 'host:port' (a bare host takes `port`); instead of `host`",
    )
    connect_timeout: PositiveDuration = Field(
        default=timedelta(seconds=10),
        description="with `nodes`: how long one attempt waits for the broker's CONNACK before trying the next node",
    )
    round_wait_max: PositiveDuration = Field(
        default=timedelta(seconds=30),
        description="with `nodes`: the longest wait after every node failed in turn (1 s, doubling, jittered)",
    )
    client_id: str | None = None
    username: str | None = None
    password: Secret | None = None
    tls: TlsConfig | None = None
    keepalive: PositiveDuration = timedelta(seconds=30)
    protocol: str = Field(default="3.1.1", pattern=r"^(3\.1\.1|5)$")

    @model_validator(mode="after")
    def _one_form(self) -> BrokerConfig:
        if self.nodes is not None:
            if "host" in self.model_fields_set:
                raise ValueError("give either 'host' (one broker) or 'nodes' (a cluster), not both")
            seen: set[tuple[str, int]] = set()
            for node in self.endpoints():
                if node in seen:
                    raise ValueError(f"nodes: {node[0]}:{node[1]} is listed twice")
                seen.add(node)
        return self

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
            assert port is not None  # checked by _check_node
            found.append((host, port))
        return found
