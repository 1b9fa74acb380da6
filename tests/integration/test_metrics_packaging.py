"""The shipped alert rules and Grafana dashboard name only metrics the collector and agent expose."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.metrics_http import AgentMetrics
from agent.runtime import Agent
from collector.metrics import CollectorMetrics
from collector.store.sqlite import SqliteStore
from linewarden.config.agent import AgentConfig
from linewarden.config.load import load
from tests.integration.agent_helpers import agent_toml

ROOT = Path(__file__).resolve().parents[2]
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",), "unknown": ("",)}


def _names(exposition: bytes) -> set[str]:
    return {
        family.name + suffix
        for family in text_string_to_metric_families(exposition.decode())
        for suffix in _SUFFIXES[family.type]
        if not family.name.endswith("_created")  # creation times of counters: not worth a panel
    }


@pytest.fixture
def exposed(tmp_path: Path) -> set[str]:
    store = SqliteStore(tmp_path / "c.db")
    store.migrate()
    names = _names(CollectorMetrics(store, lambda: 0, lambda: True).exposition())
    path = tmp_path / "agent.toml"
    path.write_text(agent_toml(tmp_path / "data", 1, tcp_port=1))
    agent = Agent(load(AgentConfig, path), path)
    names |= _names(AgentMetrics(agent, lambda: 0).exposition())
    agent.outbox.close()
    store.close()
    return names | {"up"}


def _used(text: str) -> set[str]:
    return set(re.findall(r"\b(linewarden_[a-z_]+|up)\{?", text))


def test_alert_rules_use_exposed_metrics(exposed: set[str]) -> None:
    yaml = pytest.importorskip("yaml")
    rules = yaml.safe_load((ROOT / "packaging/prometheus/linewarden-alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert len(exprs) >= 10
    used = set().union(*(_used(e) for e in exprs))
    assert used - exposed == set()


def test_dashboard_uses_exposed_metrics(exposed: set[str]) -> None:
    dashboard = json.loads((ROOT / "packaging/grafana/linewarden.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = set().union(*(_used(e) for e in exprs))
    assert used - exposed == set()
    # every metric either app exposes is on the dashboard
    assert {n for n in exposed if n.startswith("linewarden_") and not n.endswith(("_count", "_sum"))} - used == set()
