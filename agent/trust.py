"""Trusting an OPC UA server's certificate on purpose: `linewarden agent trust` and the hint `agent check`
prints for a server the agent does not trust yet."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

from agent.probes.base import ProbeResult
from agent.probes.opcua_session import UNTRUSTED_CAUSE, fetch_server_certificate
from agent.probes.opcua_trust import TrustList, fingerprint
from linewarden.config.agent import AgentConfig
from linewarden.config.targets import OpcUaTarget, TargetConfig

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
_FINGERPRINT_KEY = "server_certificate_sha256"


def trust_list(cfg: AgentConfig, target: OpcUaTarget) -> TrustList:
    """The target's trust list, without trust on first use: trusting is an operator's explicit step here."""
    return TrustList(target.trust_dir or cfg.opcua_trust().trust_dir)


def untrusted_hint(cfg: AgentConfig, target: TargetConfig, result: ProbeResult, config_path: Path) -> str:
    """How to trust the server a check refused ("" when the check refused nothing)."""
    found = result.values.get(_FINGERPRINT_KEY)
    if result.cause != UNTRUSTED_CAUSE or not isinstance(target, OpcUaTarget) or not found:
        return ""
    directory = trust_list(cfg, target).directory
    return (
        f"{target.id}: the server offers a certificate with SHA-256 {found}. Compare it with the one shown at the "
        f"server itself; if it is the same, trust it:\n"
        f"  linewarden agent trust --config {config_path} --target {target.id} --fingerprint {found}\n"
        f"  (or copy the server's certificate file into {directory})"
    )


def _normal(text: str) -> str:
    return re.sub(r"[^0-9A-F]", "", text.upper())


async def trust_server(cfg: AgentConfig, target_id: str, expected: str) -> int:
    target = next((t for t in cfg.targets if t.id == target_id), None)
    if not isinstance(target, OpcUaTarget) or target.security_policy == "None":
        print(f"error: {target_id} is not an OPC UA target with a security policy", file=sys.stderr)
        return EXIT_USAGE
    timeout = (target.timeout or cfg.defaults.timeout).total_seconds()
    try:
        der = await fetch_server_certificate(target, timeout)
    except Exception as exc:  # any failure to reach the server: say it, change nothing
        print(f"error: cannot fetch the server certificate of {target.endpoint}: {exc!r}", file=sys.stderr)
        return EXIT_RUNTIME
    found = fingerprint(der)
    if _normal(found) != _normal(expected):
        print(f"error: {target.endpoint} offers SHA-256 {found}, not the one given: nothing trusted", file=sys.stderr)
        return EXIT_RUNTIME
    trust = trust_list(cfg, target)
    if trust.check(target.endpoint, der).trusted:
        print(f"{target.endpoint}: certificate {found} is trusted already")
        return EXIT_OK
    parts = urlsplit(target.endpoint)
    path = trust.add(der, f"{parts.hostname}_{parts.port or 4840}-{_normal(found)[:16]}")
    print(f"trusted: {path} (SHA-256 {found})")
    return EXIT_OK
