"""Domain vocabulary shared by agent and collector: states, severities, criticalities."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    UP = "UP"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"
    UNKNOWN = "UNKNOWN"


class Severity(StrEnum):
    S1 = "S1"
    S2 = "S2"
    S3 = "S3"
    S4 = "S4"

    @property
    def rank(self) -> int:
        """1 for S1 (worst) … 4 for S4; lower is more severe."""
        return int(self.value[1])

    def worse_than(self, other: Severity) -> bool:
        return self.rank < other.rank


class Criticality(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class ProbeKind(StrEnum):
    OPCUA = "opcua"
    MODBUS = "modbus"
    HTTP = "http"
    TCP = "tcp"
    PROCESS = "process"
    HOST = "host"
    FILE_AGE = "file_age"
    INTERFACE = "interface"
