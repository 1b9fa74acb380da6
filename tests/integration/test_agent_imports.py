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


def test_an_opcua_probe_loads_asyncuas_client_half_without_its_server_or_cryptography() -> None:
    node = {"name": "n", "namespace_uri": "urn:x", "identifier": "i=2258"}
    opcua: dict[str, object] = {"type": "opcua", "endpoint": "opc.tcp://127.0.0.1:1", "nodes": [node]}
    assert _loaded(opcua, "asyncua", "asyncua.server", "cryptography", "importlib.metadata") == ["asyncua"]


def test_no_agent_loads_pydantic_or_pahos_proxy_helpers() -> None:
    modbus = {"type": "modbus", "host": "127.0.0.1", "port": 1502, "points": [{"name": "p", "address": 0}]}
    assert _loaded(modbus, "pydantic", "importlib.metadata", "http.client", "email") == []


LOAD_CONFIG = """
import json, sys
from linewarden.config.agent import AgentConfig
from linewarden.config.load import load
config = load(AgentConfig, sys.argv[1])
print(json.dumps({"targets": [t.type for t in config.targets], "pydantic": "pydantic" in sys.modules}))
"""
MODBUS_AGENT = """
[agent]
id = "a1"
site = "s1"
heartbeat_interval = "30s"

[broker]
host = "127.0.0.1"
tls = { verify_hostname = false }

[[assets]]
id = "line1"
criticality = "high"

[[targets]]
id = "plc1"
asset = "line1"
type = "modbus"
host = "127.0.0.1"
interval = "1s"
points = [{ name = "status", address = 0, condition = { equals = 1, fail_state = "DOWN" } }]
"""


def test_loading_a_modbus_only_agent_config_imports_no_pydantic(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(MODBUS_AGENT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", LOAD_CONFIG, str(path)], check=True, capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=60)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"targets": ["modbus"], "pydantic": False}


CRYPTOGRAPHY_LATER = """
import json, sys
from agent.probes import asyncua_client
before = "cryptography" in sys.modules
sha = asyncua_client.SecurityPolicyBasic256Sha256  # a name asyncua bound from the stand-in: its first use loads
from asyncua.crypto import cert_gen, uacrypto
digest = uacrypto.hashes.SHA256()  # a placeholder called: cryptography is imported, every placeholder replaced
import cryptography.x509
from cryptography.hazmat.primitives import hashes
left = [f"{name}.{attr}" for name, module in list(sys.modules.items()) if name.startswith("asyncua") and module
        for attr, value in vars(module).items() if type(value).__name__ in ("_Placeholder", "_StandInModule")]
import asyncua
print(json.dumps({"before": before, "digest": isinstance(digest, hashes.SHA256), "left": left,
                  "x509": uacrypto.x509 is cryptography.x509, "oids": len(cert_gen.OID_NAME_MAP),
                  "server": asyncua.Server.__name__, "version": asyncua.__version__ != ""}))
"""


def test_asyncua_gets_the_real_cryptography_on_its_first_use() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", CRYPTOGRAPHY_LATER], check=True, capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=60)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "before": False, "digest": True, "left": [], "x509": True, "oids": len(_oid_names()), "server": "Server",
        "version": True,
    }


def _oid_names() -> set[str]:
    from cryptography.hazmat._oid import _OID_NAMES

    return set(_OID_NAMES.values())


POLL_UNSECURED = """
import asyncio, json, sys
from agent.probes.context import ProbeContext
from tests.integration.probe_helpers import UNHURRIED, poll_until, probe
from linewarden.domain import State

async def main():
    context = ProbeContext()
    node = {"name": "running", "namespace_uri": "urn:linewarden:sim:plc", "identifier": "s=Running",
            "condition": {"equals": True}}
    made = probe(context, UNHURRIED, type="opcua", endpoint=sys.argv[1], nodes=[node])
    result = await poll_until(made, State.UP, timeout=30)
    await context.close()
    return result.state.value

state = asyncio.run(main())
print(json.dumps([state, sorted(m for m in ("cryptography", "asyncua.server") if m in sys.modules)]))
"""


def test_an_unsecured_opcua_session_polls_without_cryptography() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    sim = subprocess.Popen([sys.executable, "-m", "linewarden.cli", "sim", "opcua"], stdout=subprocess.PIPE,
                           text=True, env=env, cwd=REPO)
    try:
        assert sim.stdout is not None
        endpoint = ""
        for line in sim.stdout:
            if line.strip() == "ready":
                break
            endpoint = line.split()[-1]
        out = subprocess.run([sys.executable, "-c", POLL_UNSECURED, endpoint], check=True, capture_output=True,
                             text=True, env=env, cwd=REPO, timeout=90)
    finally:
        sim.terminate()
        sim.wait(timeout=30)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["UP", []]
