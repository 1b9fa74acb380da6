"""A contract, a collector and an agent-side publisher for the ticketing tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from collector.ticketing.dispatch import RetryPolicy
from linewarden.book import ContractBook
from linewarden.calendar import Calendar
from linewarden.config.base import BrokerConfig
from linewarden.config.calendar import CalendarSection
from linewarden.config.collector import ApiConfig, CollectorConfig, CollectorSection
from linewarden.config.contract import ContractConfig
from linewarden.config.load import convert
from tests.fakes.webhook import FakeWebhookReceiver

SECRET = "0123456789abcdef0123456789abcdef"
SECRET_ENV = "LW_TEST_SECRET"
SMTP_USER = "linewarden"
FAST = RetryPolicy(attempt_timeout_s=2, attempts=2, run_budget_s=5, wait_multiplier_s=0.01, wait_max_s=0.05, runs=3)



@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWebhookReceiver]:
    """A signed-webhook vendor receiver, its secret in the environment the sink configs name."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    receiver = FakeWebhookReceiver(SECRET).start()
    yield receiver
    receiver.stop()


BUSINESS_HOURS = Calendar.from_config(
    convert(CalendarSection,
        {"id": "business-hours-de", "timezone": "Europe/Berlin",
         "hours": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"}]}
    )
)


def contract(cid: str, vendor: str, assets: list[str], sink: dict[str, Any] | None, **extra: Any) -> ContractConfig:
    data: dict[str, Any] = {
        "contract": {"id": cid, "vendor": vendor, "document_sha256": "0" * 64, "currency": "EUR",
                     "fee_per_period": 1000, "timezone": "Europe/Berlin"},
        "scope": {"assets": assets},
        "support": {"tier": "premium", "targets": {"S1": {"response": "1h", "resolution": "4h"},
                                                   "S2": {"response": "4h", "resolution": "8h"}}},
        **extra,
    }
    if sink is not None:
        data["ticketing"] = sink
    return ContractConfig.model_validate(data)


def book(*contracts: ContractConfig) -> ContractBook:
    return ContractBook({c.contract.id: c for c in contracts}, {"business-hours-de": BUSINESS_HOURS})


def sink_config(kind: str, url: str, ca_file: Path | None = None) -> dict[str, Any]:
    """The `[ticketing]` table of a contract for a fake vendor at `url`; `ca_file` is the SMTP server's CA."""
    secret = {"env": SECRET_ENV}
    if kind == "email":
        smtp = urlsplit(url)
        return {"kind": "email", "host": smtp.hostname, "port": smtp.port, "ca_file": str(ca_file),
                "username": SMTP_USER, "password": secret, "sender": "linewarden@plant-a.example",
                "to": ["support@acme.example"]}
    if kind == "jira":
        return {"kind": "jira", "base_url": url, "user": "lw@plant-a.example", "api_token": secret,
                "project_key": "PLCSUP"}
    if kind == "servicenow":
        return {"kind": "servicenow", "instance_url": url, "user": "lw", "password": secret}
    if kind == "webhook":
        return {"kind": "webhook", "url": url + "/hooks/linewarden", "secret": secret}
    return {"kind": "pagerduty", "events_url": url + "/v2/enqueue", "routing_key": secret}


def collector_config(host: str, port: int, data_dir: Path, name: str, api_port: int = 0) -> CollectorConfig:
    return CollectorConfig(
        collector=CollectorSection(id=name, data_dir=data_dir),
        broker=BrokerConfig(host=host, port=port),
        api=ApiConfig(host="127.0.0.1", port=api_port),
    )
