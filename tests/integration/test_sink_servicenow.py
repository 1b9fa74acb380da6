"""The ServiceNow sink against a fake Table API that checks auth, paths and bodies as ServiceNow documents them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from collector.ticketing.registry import make_sink
from collector.ticketing.servicenow import ServiceNowTicketSink
from linewarden.config.contract import ServiceNowSink
from linewarden.domain import Severity
from linewarden.errors import TicketRejected
from tests.fakes.servicenow import FakeServiceNow
from tests.fakes.tickets import ticket

USER, PASSWORD = "linewarden", "sn-pass"


@pytest.fixture
def snow() -> Iterator[FakeServiceNow]:
    fake = FakeServiceNow(USER, PASSWORD).start()
    yield fake
    fake.stop()


def _sink(snow: FakeServiceNow, monkeypatch: pytest.MonkeyPatch, password: str = PASSWORD) -> ServiceNowTicketSink:
    monkeypatch.setenv("LW_TEST_SN_PASSWORD", password)
    config = ServiceNowSink(
        kind="servicenow",
        instance_url=snow.url,
        user=USER,
        password={"env": "LW_TEST_SN_PASSWORD"},
        assignment_group="acme-mes-support",
    )
    sink = make_sink(config)
    assert isinstance(sink, ServiceNowTicketSink)
    return sink


async def test_incident_lifecycle(snow, monkeypatch):
    sink = _sink(snow, monkeypatch)
    t = ticket()
    assert await sink.find(t.idempotency_key) is None
    ref = await sink.create(t)
    assert await sink.find(t.idempotency_key) == ref
    await sink.update(ref, ticket(severity=Severity.S1))
    await sink.comment(ref, t, "Reminder: no response after 48h")
    await sink.resolve(ref, t, "Restored at 07:10")
    await sink.aclose()

    assert snow.rejected == []
    record = snow.incidents[ref.id]
    assert ref.display == record["number"] == "INC0010001"
    assert record["correlation_id"] == "inc-7f3a" and record["assignment_group"] == "acme-mes-support"
    assert (record["impact"], record["urgency"]) == ("1", "1")
    assert record["comments_log"] == ["Reminder: no response after 48h"]
    assert record["state"] == "6" and record["close_notes"] == "Restored at 07:10"


async def test_bad_credentials_are_rejected(snow, monkeypatch):
    sink = _sink(snow, monkeypatch, password="wrong")
    with pytest.raises(TicketRejected, match="401"):
        await sink.create(ticket())
    await sink.aclose()
    assert snow.incidents == {}
