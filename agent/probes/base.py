"""The one async interface every probe implements, and what a poll returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from agent.conditions import Failure
from linewarden.config.targets import TargetBase
from linewarden.domain import State

if TYPE_CHECKING:
    from agent.probes.context import ProbeContext

T = TypeVar("T", bound=TargetBase)


@dataclass(frozen=True)
class ProbeResult:
    """One observation of one target.

    `state` is UP, DEGRADED or DOWN (UNKNOWN when the probe itself failed, e.g. misconfigured).
    `reason` says why the state is not UP, in words an engineer can act on; `cause` is the same as a stable
    dotted code (`modbus.exception.4`, `http.timeout`, `condition.status`) that does not change with the
    measurements in the reason. `configuration` is the cause code (`config.unknown_node`) of a fault that may be
    the config's rather than the device's (an unknown namespace or node, an illegal register address), "" for
    others: see linewarden.debounce.
    `versions` carries software/firmware versions or file hashes for change detection.
    """

    state: State
    reason: str = ""
    latency_ms: float | None = None
    values: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    cause: str = ""
    configuration: str = ""

    @classmethod
    def of(
        cls,
        failure: Failure,
        latency_ms: float | None = None,
        values: dict[str, Any] | None = None,
        versions: dict[str, str] | None = None,
    ) -> ProbeResult:
        """The result that reports `failure` (conditions.OK for a healthy target)."""
        return cls(
            failure.state,
            failure.reason,
            latency_ms,
            values or {},
            versions or {},
            failure.cause,
            failure.configuration,
        )


class Probe(ABC, Generic[T]):
    """Polls one target. Holds its connection (or a share of one) across polls; never raises from poll().

    `context` holds what probes share: one Modbus connection per host:port, one OPC UA session per endpoint,
    the host's CPU sampler.
    """

    kind: ClassVar[str]

    def __init__(self, target: T, timeout: timedelta, context: ProbeContext, interval: timedelta) -> None:
        self.target = target
        self.timeout = timeout
        self.context = context
        self.interval = interval  # the effective poll interval (the target's, else the agent default)

    @property
    def timeout_s(self) -> float:
        return self.timeout.total_seconds()

    @property
    def interval_s(self) -> float:
        return self.interval.total_seconds()

    def poll_budget(self) -> float:
        """Seconds a poll may take before the caller gives up on it as hung (see registry.safe_poll)."""
        return 3 * self.timeout_s + 1.0

    def line(self) -> object:
        """What this probe's polls take turns on: the agent polls the targets of one line one after another (one
        Modbus gateway or serial line carries one request at a time). The probe itself by default: polled on
        its own, beside every other target."""
        return self

    @abstractmethod
    async def poll(self, now: float) -> ProbeResult:
        """Observe the target once. `now` is wall-clock seconds since the epoch (for change-within checks).

        Implementations bound every network operation by `self.timeout` and return a DOWN or DEGRADED
        result with a reason instead of raising.
        """

    async def close(self) -> None:
        """Release connections. Called once when the agent stops."""
