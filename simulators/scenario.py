"""Scenario runner: applies a scenario file's fault timeline to a plant, on a compressible clock.

`speed` compresses time: at speed 10 a step `at = "20s"` fires 2 s after the start and `down` for
`seconds = 45` lasts 4.5 s. Latencies (`ms`) are magnitudes, not timeline, and are never scaled.
The clock and the sleep are injectable so tests can drive the timeline without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from linewarden.errors import SimulatorError
from simulators.config import ScenarioConfig
from simulators.fault_spec import FaultSpec, check_supported
from simulators.plant import FaultTarget


@dataclass(frozen=True)
class Action:
    """One fault to apply `at` seconds of scenario time after the start."""

    at: float
    device: str
    spec: FaultSpec


@dataclass(frozen=True)
class Applied:
    """What happened to an action: when (scenario seconds) and the error, if the device refused it."""

    action: Action
    at: float
    error: str | None = None


def timeline(scenario: ScenarioConfig, speed: float = 1.0) -> list[Action]:
    """The scenario's actions in time order (file order on ties), durations in `seconds` scaled by `speed`."""
    if speed <= 0:
        raise SimulatorError("speed must be > 0")
    actions: list[Action] = []
    for step in scenario.step:
        spec = step.fault_spec()
        if spec.seconds is not None:
            spec = spec.model_copy(update={"seconds": spec.seconds / speed})
        actions.append(Action(step.at.total_seconds(), step.device, spec))
        revert = step.revert_spec()
        if revert is not None and step.until is not None:
            actions.append(Action(step.until.total_seconds(), step.device, revert))
    return sorted(actions, key=lambda a: a.at)


class ScenarioRunner:
    """Run a scenario against a FaultTarget (a local Plant or a ControlClient)."""

    def __init__(
        self,
        target: FaultTarget,
        scenario: ScenarioConfig,
        speed: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_applied: Callable[[Applied], None] | None = None,
    ) -> None:
        self.target = target
        self.scenario = scenario
        self.speed = speed
        self.actions = timeline(scenario, speed)
        self.applied: list[Applied] = []
        self._clock = clock
        self._sleep = sleep
        self._on_applied = on_applied

    async def check(self) -> None:
        """Raise SimulatorError naming the first step whose device is missing or cannot take its fault."""
        kinds = await self.target.device_kinds()
        for action in self.actions:
            kind = kinds.get(action.device)
            if kind is None:
                raise SimulatorError(
                    f"scenario {self.scenario.scenario.name}: no device {action.device!r} in the plant "
                    f"(it has {', '.join(sorted(kinds))})"
                )
            try:
                check_supported(kind, action.spec)
            except SimulatorError as exc:
                raise SimulatorError(f"scenario {self.scenario.scenario.name}, device {action.device}: {exc}") from None

    async def run(self) -> list[Applied]:
        """Check the whole timeline, then apply it. A device refusing one action does not stop the rest."""
        await self.check()
        start = self._clock()
        for action in self.actions:
            wait = start + action.at / self.speed - self._clock()
            if wait > 0:
                await self._sleep(wait)
            error: str | None = None
            try:
                await self.target.apply(action.device, action.spec)
            except SimulatorError as exc:
                error = str(exc)
            done = Applied(action, (self._clock() - start) * self.speed, error)
            self.applied.append(done)
            if self._on_applied is not None:
                self._on_applied(done)
        return self.applied
