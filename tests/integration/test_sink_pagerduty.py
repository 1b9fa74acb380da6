"""The PagerDuty sink against a fake Events API v2 that checks events as PagerDuty documents them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from collector.ticketing.pagerduty import PagerDutyTicketSink
from collector.ticketing.registry import make_sink
from linewarden.config.contract import PagerDutySink
from linewarden.domain import Severity
from linewarden.errors import TicketRejected
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.tickets import ticket

ROUTING_KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    fake = FakePagerDuty(ROUTING_KEY).start()
    yield fake
    fake.stop()


def _sink(pagerduty: FakePagerDuty, monkeypatch: pytest.MonkeyPatch, key: str = ROUTING_KEY) -> PagerDutyTicketSink:
    monkeypatch.setenv("LW_TEST_PD_KEY", key)
    config = PagerDutySink(
        kind="pagerduty", events_url=pagerduty.url + "/v2/enqueue", routing_key={"env": "LW_TEST_PD_KEY"}
    )
    sink = make_sink(config)
    assert isinstance(sink, PagerDutyTicketSink)
    return sink


async def test_trigger_acknowledge_resolve(pagerduty, monkeypatch):
    sink = _sink(pagerduty, monkeypatch)
    t = ticket()
    ref = await sink.create(t)
    again = await sink.create(t)  # same dedup_key: the same alert
    await sink.update(ref, ticket(severity=Severity.S1))
    await sink.acknowledge(t)
    await sink.resolve(ref, t, "restored")
    await sink.aclose()

    assert pagerduty.rejected == []
    assert ref == again and ref.id == "inc-7f3a" and pagerduty.alerts_created == 1
    alert = pagerduty.alerts["inc-7f3a"]
    assert alert["severity"] == "critical" and alert["status"] == "resolved"
    assert alert["log"] == ["trigger", "trigger", "trigger", "acknowledge", "resolve"]


async def test_an_unknown_routing_key_is_rejected(pagerduty, monkeypatch):
    sink = _sink(pagerduty, monkeypatch, key="f" * 32)
    with pytest.raises(TicketRejected, match="400"):
        await sink.create(ticket())
    await sink.aclose()
    assert pagerduty.alerts == {}
