"""A broker cluster in the config (`[broker] nodes`) and the order and waits in which its nodes are tried."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linewarden.cli import main
from linewarden.config.agent import AgentConfig
from linewarden.config.base import BrokerConfig
from linewarden.config.load import convert, validate
from linewarden.failover import NodeRotation

ROOT = Path(__file__).resolve().parents[2]
AGENT_EXAMPLE = (ROOT / "config" / "agent.toml").read_text()
ONE_BROKER = 'host = "127.0.0.1"\nport = 1883\n'


def _check(tmp_path: Path, broker_lines: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    assert ONE_BROKER in AGENT_EXAMPLE
    path = tmp_path / "agent.toml"
    path.write_text(AGENT_EXAMPLE.replace(ONE_BROKER, broker_lines))
    code = main(["config", "check", str(path)])
    err = capsys.readouterr().err
    if code:
        assert str(path) in err and err.count("\n") == 1, "one message, naming the file"
    return code, err


def test_the_single_broker_form_is_one_endpoint() -> None:
    assert BrokerConfig(host="mqtt.local", port=8883).endpoints() == [("mqtt.local", 8883)]
    assert BrokerConfig().endpoints() == [("127.0.0.1", 1883)]


def test_nodes_are_host_port_a_bare_host_takes_port() -> None:
    nodes = ["a.example:1883", "b.example", "[::1]:1884", "[fe80::2]"]
    cfg = convert(BrokerConfig, {"port": 8883, "nodes": nodes})
    assert cfg.endpoints() == [("a.example", 1883), ("b.example", 8883), ("::1", 1884), ("fe80::2", 8883)]
    assert cfg.shown() == "a.example:1883, b.example:8883, [::1]:1884, [fe80::2]:8883"
    assert BrokerConfig(host="mqtt.local").shown() == "mqtt.local:1883"


def test_an_agent_config_with_nodes_validates() -> None:
    lines = 'nodes = ["127.0.0.1:4001", "127.0.0.1:4002"]\nconnect_timeout = "3s"\nround_wait_max = "5s"\n'
    cfg = validate(AgentConfig, tomllib.loads(AGENT_EXAMPLE.replace(ONE_BROKER, lines)), "agent.toml")
    assert cfg.broker.endpoints() == [("127.0.0.1", 4001), ("127.0.0.1", 4002)]
    assert cfg.broker.connect_timeout == timedelta(seconds=3)


@pytest.mark.parametrize(
    ("lines", "key", "why"),
    [
        ('host = "a"\nnodes = ["b:1"]\n', "broker", "either 'host' (one broker) or 'nodes' (a cluster), not both"),
        ("nodes = []\n", "broker.nodes", "at least 1 item"),
        ('nodes = ["a:1", "mqtt://b:1883"]\n', "broker.nodes[1]", "without a scheme"),
        ('nodes = ["a:99999"]\n', "broker.nodes[0]", "port must be a number from 1 to 65535"),
        ('nodes = ["a:x"]\n', "broker.nodes[0]", "port must be a number"),
        ('nodes = [":1883"]\n', "broker.nodes[0]", "has no host"),
        ('nodes = ["::1:1883"]\n', "broker.nodes[0]", "an IPv6 address in brackets"),
        ('nodes = ["a b:1"]\n', "broker.nodes[0]", "is not host:port"),
        ("nodes = [1883]\n", "broker.nodes[0]", "expected a string, got an integer"),
        ('port = 1883\nnodes = ["a", "a:1883"]\n', "broker", "a:1883 is listed twice"),
        ('nodes = ["a:1"]\nconnect_timeout = "0s"\n', "broker.connect_timeout", "longer than zero"),
        ('nodes = ["a:1"]\nround_wait_max = 30\n', "broker.round_wait_max", "with its unit"),
    ],
)
def test_bad_nodes_name_the_file_key_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: str, key: str, why: str
) -> None:
    code, err = _check(tmp_path, lines, capsys)
    assert code == 2
    assert f"{key}: " in err and why in err, err


def test_too_many_nodes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nodes = ", ".join(f'"n{i}:1883"' for i in range(17))
    code, err = _check(tmp_path, f"nodes = [{nodes}]\n", capsys)
    assert code == 2 and "broker.nodes: " in err and "at most 16" in err


# ------------------------------------------------------------ rotation


def test_a_failed_node_hands_over_at_once_and_a_failed_round_waits() -> None:
    r = NodeRotation(3, wait_min_s=1, wait_max_s=5, stable_s=10)
    steps = [r.failed(now=t, jitter=1.0) for t in range(9)]
    assert steps == [(1, 0), (2, 0), (0, 1), (1, 0), (2, 0), (0, 2), (1, 0), (2, 0), (0, 4)]
    assert [r.failed(now=9 + t, jitter=1.0)[1] for t in range(6)] == [0, 0, 5, 0, 0, 5], "capped"


def test_a_stable_connection_starts_afresh_a_short_one_counts_in_its_round() -> None:
    r = NodeRotation(2, wait_min_s=1, wait_max_s=30, stable_s=10)
    assert r.failed(0, 1.0) == (1, 0)
    assert r.failed(1, 1.0) == (0, 1)
    r.connected(now=2)
    assert r.failed(now=3, jitter=1.0) == (1, 0), "lost after 1 s: still the next node at once"
    r.connected(now=4)
    assert r.failed(now=5, jitter=1.0) == (0, 2), "accepted then dropped by every node: the round waits"
    r.connected(now=10)
    assert r.failed(now=30, jitter=1.0) == (1, 0)
    assert r.failed(now=31, jitter=1.0) == (0, 1), "after a stable connection the waits start at the minimum again"


def test_one_node_always_waits() -> None:
    r = NodeRotation(1, wait_min_s=1, wait_max_s=30, stable_s=10)
    assert [r.failed(t, 1.0) for t in range(3)] == [(0, 1), (0, 2), (0, 4)]


def test_a_rotation_needs_a_node() -> None:
    with pytest.raises(ValueError):
        NodeRotation(0, 1, 30, 10)


@given(
    nodes=st.integers(1, 8),
    events=st.lists(st.tuples(st.booleans(), st.floats(0, 100), st.floats(0, 1)), max_size=60),
)
def test_every_node_is_tried_and_waits_stay_within_bounds(
    nodes: int, events: list[tuple[bool, float, float]]
) -> None:
    r = NodeRotation(nodes, wait_min_s=1, wait_max_s=30, stable_s=10)
    now, tried, since_wait, up_since = 0.0, [0], 0, None
    for connect, dt, jitter in events:
        now += dt
        if connect:
            r.connected(now)
            up_since = now
            continue
        if up_since is not None and now - up_since >= 10:
            since_wait = 0  # a stable connection starts the count afresh
        up_since = None
        index, wait = r.failed(now, jitter)
        assert index == (tried[-1] + 1) % nodes, "round robin"
        tried.append(index)
        assert wait == 0 or 0.5 <= wait <= 30
        since_wait = 0 if wait else since_wait + 1
        assert since_wait < nodes, "never more than one round without a wait"
