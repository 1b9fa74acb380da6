"""A Modbus-only agent loads only what Modbus needs: no OPC UA, HTTP, psutil, holidays or cryptography (memory)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
from agent.probes.context import ProbeContext
from agent.probes.registry import make_probe
from agent.runtime import Agent
from linewarden.config.agent import Defaults
from tests.integration.probe_helpers import target

probe = make_probe(target(**json.loads(sys.argv[1])), Defaults(), ProbeContext())
print(json.dumps(sorted(m for m in sys.argv[2:] if m in sys.modules)))
"""


def _loaded(target: dict[str, object], *modules: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(target), *modules], check=True,
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_a_modbus_only_agent_does_not_load_the_other_kinds_libraries() -> None:
    modbus = {"type": "modbus", "host": "127.0.0.1", "port": 1502, "points": [{"name": "p", "address": 0}]}
    assert _loaded(modbus, "asyncua", "httpx", "psutil", "holidays", "cryptography") == []


def test_an_http_probe_loads_httpx_without_its_command_line_extras() -> None:
    assert _loaded({"type": "http", "url": "http://127.0.0.1:1/health"}, "httpx", "click", "rich") == ["httpx"]
