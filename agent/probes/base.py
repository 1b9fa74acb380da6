"""The one async interface every probe implements, and what a poll returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

from linewarden.config.targets import TargetBase
from linewarden.domain import State


@dataclass(frozen=True)
class ProbeResult:
    """One observation of one target.

    `state` is UP, DEGRADED or DOWN (UNKNOWN when the probe itself failed, e.g. misconfigured).
    `reason` says why the state is not UP, in words an engineer can act on.
    `versions` carries software/firmware versions or file hashes for change detection.
    """

    state: State
    reason: str = ""
    latency_ms: float | None = None
    values: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)


class Probe(ABC):
    """Polls one target. Holds its connection (or a share of one) across polls; never raises from poll()."""

    kind: ClassVar[str]

    def __init__(self, target: TargetBase, timeout: timedelta) -> None:
        self.target = target
        self.timeout = timeout

    @abstractmethod
    async def poll(self, now: float) -> ProbeResult:
        """Observe the target once. `now` is wall-clock seconds since the epoch (for change-within checks).

        Implementations bound every network operation by `self.timeout` and return a DOWN or DEGRADED
        result with a reason instead of raising.
        """

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Called once when the agent stops."""
