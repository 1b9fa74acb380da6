"""The collector's `[remote_access]`: where vendor remote-session records (jump host, VPN gateway) come in
(docs/changes-and-remote-access.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from linewarden.config.pydantic_base import StrictModel


def _port_in_range(value: str) -> str:
    if not 0 <= int(value.rpartition(":")[2]) <= 65535:
        raise ValueError("the port must be 0 to 65535")
    return value


Listen = Annotated[
    str, Field(pattern=r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$"), AfterValidator(_port_in_range)
]


class RemoteAccessConfig(StrictModel):
    syslog_udp: Listen | None = Field(default=None, description="'host:port' to receive RFC 5424 over UDP")
    syslog_tcp: Listen | None = Field(default=None, description="'host:port' to receive RFC 5424 over TCP")
    max_message_bytes: Annotated[int, Field(ge=480, le=65_535)] = 8192
    max_connections: Annotated[int, Field(ge=1, le=1000)] = 32

    @property
    def enabled(self) -> bool:
        return self.syslog_udp is not None or self.syslog_tcp is not None


def split_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)
