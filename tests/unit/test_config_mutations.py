"""Property: every example config in config/, mutated (values, keys, types), either checks clean or is refused
with the one-line config error: never another exception, never a traceback.

Each mutated file is written where its original lives, in a copy of config/, so the files it names (calendars,
contracts) are followed as `linewarden config check` follows them.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import shutil
import tomllib
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linewarden.cli import main

REPO = Path(__file__).resolve().parents[2]
# Small enough for the fast suite; raise it for a long hunt: LW_CONFIG_EXAMPLES=3000 pytest this file
EXAMPLES_PER_FILE = int(os.environ.get("LW_CONFIG_EXAMPLES", "60"))
EXAMPLES = sorted(p.relative_to(REPO / "config") for p in (REPO / "config").rglob("*.toml"))

# What a user, or a bad day, puts in a config file.
HOSTILE_TEXT = [
    "", " ", "Europe", "A" * 300, "Europe/../../etc/passwd", "/etc/passwd", "99999999999999999999d", "9" * 400 + "s",
    "-5s", "0s", "1e400s", "NaN", "inf", "a\x00b", "/dev/zero", "/dev/null", "/", ".", "..", "*", "**/*",
    "../../../../../../dev/zero", "\u202e", "é" * 70, "x" * 100_000, "99999999999999999999 business days",
    "sNaN", "Infinity", "-0", "1" * 5000, "S1", "UP", "24x7", "production", "http://", "https://x", "00:00",
    "25:61", "2026-02-30",
]
SCALARS = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.text(max_size=40),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dates(),
    st.times(),
    st.datetimes(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["id", "x", "a\x00", ""]), inner,
                                                               max_size=3),
    max_leaves=8,
)


def _key(k: str) -> str:
    return json.dumps(k)


def _value(v: Any) -> str:
    """TOML for a value: one line (inline tables and arrays), so any shape is written the same way."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are TOML basic-string escapes
    if isinstance(v, datetime | date | time):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def dumps(data: dict[str, Any]) -> str:
    return "".join(f"{_key(k)} = {_value(v)}\n" for k, v in data.items())


def _paths(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in the document a mutation can hit (the root included)."""
    out = [at]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*at, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*at, i))
    return out


def _parent(doc: Any, at: tuple[Any, ...]) -> Any:
    for part in at[:-1]:
        doc = doc[part]
    return doc


@st.composite
def mutated(draw: st.DrawFn, original: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.sampled_from(_paths(doc)))
        op = draw(st.sampled_from(["replace", "delete", "add", "rename"]))
        target = doc if not at else _parent(doc, at)[at[-1]]
        if op == "add" and isinstance(target, dict):
            target[draw(st.sampled_from(["extra", "id", "timezone", "\x00", "a" * 200]))] = draw(VALUES)
        elif op == "add" and isinstance(target, list):
            target.append(draw(VALUES))
        elif not at:
            continue
        elif op == "delete":
            del _parent(doc, at)[at[-1]]
        elif op == "rename" and isinstance(at[-1], str):
            parent = _parent(doc, at)
            parent[at[-1] + draw(st.sampled_from(["x", "_", "\x00", "I"]))] = parent.pop(at[-1])
        else:
            _parent(doc, at)[at[-1]] = draw(_like(target))
    return doc


def _like(value: Any) -> st.SearchStrategy[Any]:
    """A replacement: mostly hostile values of the same type (what gets past a type check), else anything."""
    if isinstance(value, str):
        return st.sampled_from(HOSTILE_TEXT) | VALUES
    if isinstance(value, bool):
        return VALUES
    if isinstance(value, int | float):
        return st.sampled_from([0, -1, 2**63, -(2**63) - 1, 10**30, math.inf, math.nan, -0.0, 1e308]) | VALUES
    return VALUES


@pytest.fixture(scope="module")
def config_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("configs") / "config"
    shutil.copytree(REPO / "config", root)
    return root


def check(path: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["config", "check", str(path)])
    return code, err.getvalue()


def _edited(config_copy: Path, example: str, old: str, new: str) -> Path:
    text = (REPO / "config" / example).read_text()
    assert old in text
    path = config_copy / f"edited-{example.replace('/', '-')}"
    if "/" in example:  # beside its original, so relative references resolve the same
        path = config_copy / Path(example).parent / f"edited-{Path(example).name}"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("example", "old", "new", "message"),
    [
        ("collector.toml", '"Europe/Berlin"', '"Europe"', "collector.timezone: unknown time zone 'Europe'"),
        ("collector.toml", '"Europe/Berlin"', '"' + "A" * 300 + '"', "collector.timezone: unknown time zone 'AAAA"),
        ("agent.toml", '"Europe/Berlin"', '"Europe/../../../etc"', "agent.timezone: unknown time zone"),
        ("collector.toml", 'keepalive = "30s"', 'keepalive = "99999999999999999999d"',
         "broker.keepalive: duration too long"),
        ("collector.toml", 'keepalive = "30s"', 'keepalive = "36526d"', "broker.keepalive: longer than 100 years"),
        ("collector.toml", '"linewarden-collector-data"', '"data\\u0000dir"', "collector.data_dir: contains a NUL"),
        ("agent.toml", '"calendars/production-plant-a.toml"', '"/dev/zero"',
         "agent.production_calendar: /dev/zero: not a regular file"),
        ("contracts/acme-mes.toml", "fee_per_period = ", "fee_per_period = 1e30 #", "a number below"),
        ("agent.toml", 'heartbeat_interval = "60s"', 'heartbeat_interval = "2d"', "agent.heartbeat_interval: at most"),
        ("contracts/acme-mes.toml", 'after = "response_target"', 'after = "99999999999999999999d"',
         "escalation[0].after: duration too long"),
        ("contracts/acme-mes.toml", 'after = "response_target"', 'after = "36526d"',
         "escalation[0].after: longer than 100 years"),
        ("contracts/acme-mes.toml", 'after = "response_target"', 'after = "99999999999999999999%"',
         "escalation[0].after: at most 1000% of the response target"),
    ],
    ids=["zone-directory", "zone-300-chars", "zone-escape", "duration-overflow", "duration-100y", "nul-in-path",
         "device-file", "huge-fee", "heartbeat-beyond-the-wire", "escalation-overflow", "escalation-100y",
         "escalation-share"],
)
def test_hostile_values_get_the_one_line_config_error(
    config_copy: Path, example: str, old: str, new: str, message: str
) -> None:
    path = _edited(config_copy, example, old, new)
    code, err = check(path)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: {path}") and message in err, err


def test_special_and_huge_files_are_refused_unread(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # opening it would block until a writer came
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (1024 * 1024) + "\n")
    assert check(Path("/dev/zero")) == (2, "error: /dev/zero: not a regular file\n")
    assert check(fifo) == (2, f"error: {fifo}: not a regular file\n")
    assert check(big) == (2, f"error: {big}: larger than 1048576 bytes: not a config file\n")
    assert check(Path("a\x00b.toml")) == (2, "error: a\\x00b.toml: the path contains a NUL character\n")


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_a_mutated_example_loads_or_fails_with_one_line(example: Path, config_copy: Path) -> None:
    original = tomllib.loads((REPO / "config" / example).read_text())
    target = config_copy / example

    @settings(max_examples=EXAMPLES_PER_FILE, deadline=None, suppress_health_check=[HealthCheck.too_slow],
              database=None)
    @given(doc=mutated(original))
    def run(doc: dict[str, Any]) -> None:
        target.write_text(dumps(doc), encoding="utf-8")
        code, err = check(target)  # any exception but ConfigError escapes main() and fails the test
        if code == 0:
            assert err == ""
        else:
            assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
            assert "Traceback" not in err

    try:
        run()
    finally:
        shutil.copy(REPO / "config" / example, target)
