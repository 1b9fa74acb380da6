"""Field protocols' pure parts and config: RTU line timing, Modbus transports, one setting per line."""

from __future__ import annotations

from typing import Any

import pytest
from msgspec import ValidationError

from agent.probes.http import MISSING
from agent.probes.interface import exchange_time, json_pointer
from linewarden.config.agent import AgentConfig
from linewarden.config.load import convert, validate
from linewarden.config.targets import TargetConfig
from linewarden.errors import ConfigError
from linewarden.modbus_timing import character_s, frame_gap_s, late_answer_guard_s

POINTS = [{"name": "p", "address": 0}]


@pytest.mark.parametrize(
    ("baud", "parity", "stopbits", "gap_ms"),
    [
        (9600, "E", 1, 4.010),  # 11 bits a character: 3.5 × 11 / 9600
        (9600, "N", 2, 4.010),
        (9600, "N", 1, 3.646),
        (1200, "E", 1, 32.083),
        (19200, "E", 1, 2.005),
        (38400, "E", 1, 1.75),  # fixed above 19200 baud
        (115200, "N", 1, 1.75),
    ],
)
def test_frame_gap(baud: int, parity: Any, stopbits: int, gap_ms: float) -> None:
    assert frame_gap_s(baud, parity, stopbits) * 1000 == pytest.approx(gap_ms, abs=0.001)


def test_late_answer_guard_covers_the_longest_frame() -> None:
    assert late_answer_guard_s(19200, "E", 1) == pytest.approx(256 * 11 / 19200 + 3.5 * 11 / 19200)
    assert late_answer_guard_s(115200, "E", 1) > 256 * character_s(115200, "E", 1)


def _modbus(**fields: Any) -> Any:
    return convert(TargetConfig, {"id": "t", "asset": "a", "type": "modbus", "points": POINTS, **fields})


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"transport": "serial"}, "transport 'serial' needs 'serial_port'"),
        ({"transport": "serial", "serial_port": "/dev/ttyS0", "host": "gw"}, "takes 'serial_port', not 'host'"),
        ({"transport": "rtu_over_tcp"}, "transport 'rtu_over_tcp' needs 'host'"),
        ({"host": "gw", "serial_port": "/dev/ttyS0"}, "'serial_port' needs transport 'serial'"),
        ({"host": "gw", "baudrate": 9600}, "baudrate: serial line settings need transport"),
        ({"transport": "serial", "serial_port": "COM3", "baudrate": 12345}, "Invalid enum value 12345"),
    ],
)
def test_modbus_transport_errors(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        _modbus(**fields)


def test_rtu_targets_name_their_line() -> None:
    serial = _modbus(transport="serial", serial_port="COM3", baudrate=9600, parity="N", stopbits=2)
    assert (serial.line, serial.line_settings) == ("serial COM3", "serial 9600 8N2")
    over_tcp = _modbus(transport="rtu_over_tcp", host="ds1", port=4001)
    assert (over_tcp.line, over_tcp.line_settings) == ("ds1:4001", "rtu_over_tcp 19200 8E1")


def test_targets_on_one_line_must_agree_on_its_settings() -> None:
    line = {"type": "modbus", "asset": "a", "transport": "serial", "serial_port": "/dev/ttyUSB0", "points": POINTS}
    data: dict[str, Any] = {
        "agent": {"id": "h", "site": "s"},
        "assets": [{"id": "a", "criticality": "low"}],
        "targets": [{**line, "id": "one"}, {**line, "id": "two", "baudrate": 9600}],
    }
    with pytest.raises(ConfigError) as caught:
        validate(AgentConfig, data, "agent.toml")
    assert str(caught.value) == (
        "agent.toml: targets: targets 'one' and 'two' share Modbus line serial /dev/ttyUSB0 but not its settings "
        "(serial 19200 8E1 against serial 9600 8E1)"
    )
    data["targets"][1]["baudrate"] = 19200
    assert len(validate(AgentConfig, data, "agent.toml").targets) == 2


def _interface(**fields: Any) -> Any:
    return convert(TargetConfig, {"id": "t", "asset": "a", "type": "interface", **fields})


NODE = {"namespace_uri": "urn:x", "identifier": "s=Pressure"}


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({}, "give 'url' .* or 'endpoint'"),
        ({"url": "http://mes/i", "endpoint": "opc.tcp://plc:4840", "node": NODE}, "not both or neither"),
        ({"url": "http://mes/i", "version_pointer": "/v"}, "'version_pointer' and 'expected_version' go together"),
        ({"url": "http://mes/i", "max_age": "5m"}, "'max_age' and 'last_exchange_pointer' go together"),
        ({"url": "http://mes/i"}, "check something"),
        ({"url": "http://mes/i", "version_pointer": "v", "expected_version": "3"}, "matching regex"),
        ({"url": "http://mes/i", "expected_datatype": "Double"}, "need 'endpoint'"),
        ({"endpoint": "opc.tcp://plc:4840"}, "needs 'node'"),
        ({"endpoint": "opc.tcp://plc:4840", "node": NODE}, "check something"),
        ({"endpoint": "opc.tcp://plc:4840", "node": NODE, "max_age": "1m", "expected_version": "3"}, "need 'url'"),
    ],
)
def test_interface_errors(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        _interface(**fields)


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [("/a/b", 1), ("/list/1", "y"), ("/a~1b", 2), ("/t~0x", 3), ("/a/c", None), ("/list/9", None), ("/", 4)],
)
def test_json_pointer(pointer: str, expected: Any) -> None:
    data = {"a": {"b": 1}, "list": ["x", "y"], "a/b": 2, "t~x": 3, "": 4}
    found = json_pointer(data, pointer)
    assert (None if found is MISSING else found) == expected


@pytest.mark.parametrize(
    ("value", "epoch"),
    [
        ("2026-12-01T12:00:00+00:00", 1796126400.0),
        ("2026-12-01T12:00:00Z", 1796126400.0),
        ("2026-12-01T13:00:00+01:00", 1796126400.0),
        ("2026-12-01T12:00:00", 1796126400.0),  # no zone: UTC
        (1796126400, 1796126400.0),
        ("yesterday", None),
        (True, None),
        (float("nan"), None),
        ({"at": 1}, None),
    ],
)
def test_exchange_time(value: Any, epoch: float | None) -> None:
    assert exchange_time(value) == epoch
