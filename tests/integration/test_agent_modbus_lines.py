"""The agent's poll loop and Modbus lines: the targets on one gateway are polled one after another, each every
tick, and a target that hangs past its budget holds up only its own line, against real gateway simulators."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest

from agent.probes.base import ProbeResult
from agent.probes.modbus import ModbusProbe
from linewarden.domain import State
from linewarden.modbus_timing import late_answer_guard_s
from simulators.broker import Mosquitto
from simulators.modbus_plc import ModbusPlc
from tests.integration.agent_helpers import agent_toml, hung_poll_times, running_agent
from tests.waiting import async_wait_until

pytestmark = pytest.mark.broker

HUNG_BUDGET_S = 1.0


def modbus_target(
    target_id: str, plc: ModbusPlc, unit: int, timeout: str = "500ms", interval: str = "200ms", line: str = ""
) -> str:
    return f"""
[[targets]]
id = "{target_id}"
type = "modbus"
asset = "plc-2"
host = "127.0.0.1"
port = {plc.port}
unit = {unit}
timeout = "{timeout}"
interval = "{interval}"
{line}

[[targets.points]]
name = "status"
address = 1
condition = {{ equals = 1, fail_state = "DOWN" }}
"""


class PollsSeen:
    """Wraps ModbusProbe.poll: counts each target's polls, keeps the states they returned, and the most polls
    of one line under way at once."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.polls: Counter[str] = Counter()
        self.states: dict[str, list[State]] = defaultdict(list)
        self.under_way: Counter[int] = Counter()  # by id() of the line
        self.most: Counter[int] = Counter()
        original = ModbusProbe.poll

        async def poll(probe: ModbusProbe, now: float) -> ProbeResult:
            line = id(probe.line())
            self.under_way[line] += 1
            self.most[line] = max(self.most[line], self.under_way[line])
            try:
                result = await original(probe, now)
                self.states[probe.target.id].append(result.state)
                return result
            finally:
                self.under_way[line] -= 1
                self.polls[probe.target.id] += 1

        monkeypatch.setattr(ModbusProbe, "poll", poll)


async def test_targets_on_one_gateway_are_polled_in_turn_every_tick(
    mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three targets on one gateway (one of them at another interval) and one on another gateway: each is polled
    tick after tick, and never two polls of one gateway's targets are under way at once (they take turns in one
    queue, not on the link's lock)."""
    seen = PollsSeen(monkeypatch)
    async with ModbusPlc("gw1") as gw1, ModbusPlc("gw2") as gw2:
        toml = agent_toml(tmp_path / "data", mosquitto.port) + "".join(
            [modbus_target(f"gw1-u{unit}", gw1, unit) for unit in (1, 2)]
            + [modbus_target("gw1-u3", gw1, 3, interval="300ms"), modbus_target("gw2-u1", gw2, 1)]
        )
        async with running_agent(tmp_path, toml) as agent:
            targets = ["gw1-u1", "gw1-u2", "gw1-u3", "gw2-u1"]
            await async_wait_until(
                lambda: all(seen.polls[t] >= 5 for t in targets), 20, what="five polls of every target"
            )
            states = {t: getattr(agent.slots[t].last, "state", None) for t in targets}
            assert states == dict.fromkeys(targets, State.UP)
    assert len(seen.most) == 2, "one line per gateway"
    assert set(seen.most.values()) == {1}, f"polls of one line overlapped: {dict(seen.most)}"


async def test_a_hung_target_holds_up_only_its_own_line(
    mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A unit that answers later than its target's budget: that target reports "no result within" its budget
    poll after poll; the next target on its gateway is polled after each ended poll and gets its own answer
    (the late one, arriving while it waits, is not taken for it), and the target on the other gateway is polled
    every tick meanwhile."""
    seen = PollsSeen(monkeypatch)
    budget = ModbusProbe.poll_budget

    def short_for_the_hung_one(probe: ModbusProbe) -> float:
        return HUNG_BUDGET_S if probe.target.id == "hung" else budget(probe)

    monkeypatch.setattr(ModbusProbe, "poll_budget", short_for_the_hung_one)
    async with ModbusPlc("gw1") as gw1, ModbusPlc("gw2") as gw2:
        await gw1.delay(1500, unit=1)  # half a second after "hung" is ended
        await gw1.delay(800, unit=2)  # so that "behind" is still waiting then
        toml = agent_toml(tmp_path / "data", mosquitto.port) + "".join([
            modbus_target("hung", gw1, 1, timeout="30s"),
            modbus_target("behind", gw1, 2, timeout="30s"),
            modbus_target("elsewhere", gw2, 1),
        ])  # fmt: skip
        async with running_agent(tmp_path, toml) as agent:
            hung = agent.slots["hung"]
            hung_at: set[int] = set()

            def hung_twice() -> bool:
                return len(hung_poll_times(hung, HUNG_BUDGET_S, hung_at)) >= 2 and len(seen.states["behind"]) >= 2

            await async_wait_until(hung_twice, 20, interval=0.02, what="two polls ended by their budget")
            assert seen.polls["elsewhere"] >= 5, "the other gateway's target was held up"
    assert "hung" not in seen.states, "the hung target's polls all ended by the budget"
    assert set(seen.states["behind"]) == {State.UP}, seen.states["behind"]
    assert set(seen.states["elsewhere"]) == {State.UP}


async def test_an_rtu_line_stays_quiet_after_a_hung_poll(
    mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll ended by its budget while its unit was still to answer is, for the line, a unit that failed to
    answer: the next request waits out the quiet time (one longest frame at the line's speed), so that the late
    answer cannot collide with it."""
    monkeypatch.setattr(ModbusProbe, "poll_budget", lambda probe: HUNG_BUDGET_S if probe.target.id == "hung" else 60.0)
    baudrate = 1200  # over TCP the line's speed only sets the agent's pacing: 2.4 s of quiet time
    line = f'transport = "rtu_over_tcp"\nbaudrate = {baudrate}'
    async with ModbusPlc("device-server", framer="rtu") as plc:
        await plc.delay(1500, unit=1)
        toml = agent_toml(tmp_path / "data", mosquitto.port) + "".join([
            modbus_target("hung", plc, 1, timeout="30s", line=line),
            modbus_target("behind", plc, 2, timeout="30s", line=line),
        ])  # fmt: skip
        async with running_agent(tmp_path, toml):
            # a frame is logged once answered: the late one too
            await async_wait_until(lambda: {1, 2} <= {unit for _, _, unit in plc.frames}, 20, what="both answered")
    hung_received = next(received for received, _, unit in plc.frames if unit == 1)
    behind_received = next(received for received, _, unit in plc.frames if unit == 2)
    quiet = late_answer_guard_s(baudrate, "E", 1)
    assert behind_received - hung_received >= quiet, "the next request did not wait out the quiet time"
