"""The Jira sink against a fake Jira Cloud that checks auth, paths and bodies as Atlassian documents them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from collector.ticketing.jira import JiraTicketSink, label_for
from collector.ticketing.registry import make_sink
from linewarden.config.contract import JiraSink
from linewarden.domain import Severity
from linewarden.errors import TicketRejected
from tests.fakes.jira import FakeJira
from tests.fakes.tickets import ticket

USER, TOKEN = "linewarden@plant-a.example", "atl-token-123"


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    fake = FakeJira(USER, TOKEN).start()
    yield fake
    fake.stop()


def _sink(jira: FakeJira, monkeypatch: pytest.MonkeyPatch, token: str = TOKEN, **extra: str) -> JiraTicketSink:
    monkeypatch.setenv("LW_TEST_JIRA_TOKEN", token)
    config = JiraSink(
        kind="jira",
        base_url=jira.url,
        user=USER,
        api_token={"env": "LW_TEST_JIRA_TOKEN"},
        project_key="PLCSUP",
        **extra,
    )
    sink = make_sink(config)
    assert isinstance(sink, JiraTicketSink)
    return sink


async def test_issue_lifecycle(jira, monkeypatch):
    sink = _sink(jira, monkeypatch)
    t = ticket()
    assert await sink.find(t.idempotency_key) is None
    ref = await sink.create(t)
    assert await sink.find(t.idempotency_key) == ref
    await sink.update(ref, ticket(severity=Severity.S1))
    await sink.comment(ref, t, "Escalated to the duty manager")
    await sink.resolve(ref, t, "Restored at 07:10, measured by the agent")
    await sink.resolve(ref, t, "Restored at 07:10, measured by the agent")  # a repeat finds it resolved
    await sink.aclose()

    assert jira.rejected == []
    issue = jira.issues[ref.id]
    assert ref.id == "PLCSUP-1" and ref.url == f"{jira.url}/browse/PLCSUP-1"
    assert issue["fields"]["labels"] == [label_for("inc-7f3a")]
    assert issue["fields"]["issuetype"] == {"name": "Incident"}
    assert issue["fields"]["priority"] == {"name": "Highest"}  # raised from High
    assert issue["status"] == "resolved" and len(issue["comments"]) == 3


async def test_service_desk_request(jira, monkeypatch):
    sink = _sink(jira, monkeypatch, service_desk_id="4", request_type_id="25")
    ref = await sink.create(ticket())
    found = await sink.find("inc-7f3a")
    await sink.aclose()
    assert jira.rejected == [] and found == ref
    assert jira.requests[0].path == "/rest/servicedeskapi/request"


async def test_a_bad_token_is_rejected(jira, monkeypatch):
    sink = _sink(jira, monkeypatch, token="wrong")
    with pytest.raises(TicketRejected, match="401"):
        await sink.create(ticket())
    await sink.aclose()
    assert jira.issues == {}


async def test_a_missing_transition_is_named(jira, monkeypatch):
    sink = _sink(jira, monkeypatch, resolve_transition="Done")
    ref = await sink.create(ticket())
    with pytest.raises(TicketRejected, match=r"no transition 'Done'.*Resolve"):
        await sink.resolve(ref, ticket(), "")
    await sink.aclose()
