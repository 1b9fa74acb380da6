"""Jira sink: Jira Cloud platform REST v3, or Jira Service Management customer requests.

Follows Atlassian's documentation:
- basic auth with e-mail and API token: https://developer.atlassian.com/cloud/jira/platform/basic-auth-for-rest-apis/
- search before create, `POST /rest/api/3/search/jql` {jql, maxResults, fields}:
  https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-search/#api-rest-api-3-search-jql-post
- create `POST /rest/api/3/issue` {fields: project, issuetype, summary, description (ADF), labels, priority}
  -> 201 {id, key, self}; edit `PUT /rest/api/3/issue/{key}` -> 204; comment
  `POST /rest/api/3/issue/{key}/comment` {body: ADF} -> 201; transitions `GET|POST
  /rest/api/3/issue/{key}/transitions` -> {transitions: [{id, name}]} / 204:
  https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/
- JSM request `POST /rest/servicedeskapi/request` {serviceDeskId, requestTypeId, requestFieldValues} -> 201
  {issueId, issueKey}: https://developer.atlassian.com/cloud/jira/service-desk/rest/api-group-request/
The idempotency key travels as the label `linewarden-<incident id>`; the search before create looks for it, as
Alertmanager's Jira receiver does with `ALERT{<group key hash>}` (prometheus/alertmanager notify/jira/jira.go).
Jira's search index lags a write by a moment, so a create lost in flight is found by a retry after the
dispatcher's backoff, not necessarily by an immediate one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

from collector.ticketing.base import Ticket, TicketSink, VendorRef, reveal
from collector.ticketing.vendor_http import HTTP_TIMEOUT_S, field, request_json
from linewarden.config.contract import JiraSink
from linewarden.errors import TicketRejected

SUMMARY_MAX = 255


def label_for(idempotency_key: str) -> str:
    return f"linewarden-{idempotency_key}"


def adf(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format document, one paragraph per line."""
    paragraphs = [
        {"type": "paragraph", "content": [{"type": "text", "text": line}]} if line else {"type": "paragraph"}
        for line in text.splitlines() or [""]
    ]
    return {"type": "doc", "version": 1, "content": paragraphs}


class JiraTicketSink(TicketSink):
    kind: ClassVar[str] = "jira"

    def __init__(self, config: JiraSink) -> None:
        self._config = config
        self._base = config.base_url.rstrip("/")
        auth = httpx.BasicAuth(config.user, reveal(config.api_token, "jira api_token"))
        self._client = httpx.AsyncClient(auth=auth, timeout=HTTP_TIMEOUT_S, headers={"Accept": "application/json"})

    def _ref(self, key: str) -> VendorRef:
        return VendorRef(key, key, f"{self._base}/browse/{key}")

    async def _call(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        return await request_json(self._client, "jira", method, self._base + path, json=body, params=params)

    async def find(self, idempotency_key: str) -> VendorRef | None:
        jql = f'project = "{self._config.project_key}" AND labels = "{label_for(idempotency_key)}" ORDER BY created'
        answer = await self._call("POST", "/rest/api/3/search/jql", {"jql": jql, "maxResults": 2, "fields": ["status"]})
        issues = answer.get("issues") if isinstance(answer, dict) else None
        if not issues:
            return None
        return self._ref(field(issues[0], "key"))

    async def create(self, ticket: Ticket) -> VendorRef:
        summary = ticket.title[:SUMMARY_MAX]
        label = label_for(ticket.idempotency_key)
        cfg = self._config
        if cfg.service_desk_id is not None and cfg.request_type_id is not None:
            body: dict[str, Any] = {
                "serviceDeskId": cfg.service_desk_id,
                "requestTypeId": cfg.request_type_id,
                "requestFieldValues": {"summary": summary, "description": _description(ticket), "labels": [label]},
            }
            return self._ref(field(await self._call("POST", "/rest/servicedeskapi/request", body), "issueKey"))
        fields = {
            "project": {"key": cfg.project_key},
            "issuetype": {"name": cfg.issue_type},
            "summary": summary,
            "description": adf(_description(ticket)),
            "labels": [label],
            "priority": {"name": cfg.priorities[ticket.severity]},
        }
        return self._ref(field(await self._call("POST", "/rest/api/3/issue", {"fields": fields}), "key"))

    async def update(self, ref: VendorRef, ticket: Ticket) -> None:
        fields = {"priority": {"name": self._config.priorities[ticket.severity]}, "summary": ticket.title[:SUMMARY_MAX]}
        await self._call("PUT", f"/rest/api/3/issue/{ref.id}", {"fields": fields})

    async def comment(self, ref: VendorRef, ticket: Ticket, text: str) -> None:
        await self._call("POST", f"/rest/api/3/issue/{ref.id}/comment", {"body": adf(text)})

    async def resolve(self, ref: VendorRef, ticket: Ticket, note: str) -> None:
        if note:
            await self.comment(ref, ticket, note)
        path = f"/rest/api/3/issue/{ref.id}/transitions"
        answer = await self._call("GET", path)
        transitions = answer.get("transitions", []) if isinstance(answer, dict) else []
        wanted = self._config.resolve_transition
        for transition in transitions:
            if isinstance(transition, dict) and transition.get("name") == wanted:
                await self._call("POST", path, {"transition": {"id": field(transition, "id")}})
                return
        issue = await self._call("GET", f"/rest/api/3/issue/{ref.id}", None, {"fields": "status"})
        if _status_category(issue) == "done":
            return  # resolved already, e.g. by an attempt whose answer was lost
        names = ", ".join(str(t.get("name")) for t in transitions if isinstance(t, dict))
        raise TicketRejected(f"jira: {ref.id} has no transition {wanted!r} (available: {names or 'none'})")

    async def aclose(self) -> None:
        await self._client.aclose()


def _description(ticket: Ticket) -> str:
    lines = [ticket.description, "", f"Severity: {ticket.severity.value}", f"Asset: {ticket.asset}"]
    lines += [f"{link.text}: {link.url}" for link in ticket.links]
    lines.append(f"linewarden incident: {ticket.idempotency_key}")
    return "\n".join(lines)


def _status_category(issue: Any) -> str | None:
    try:
        key = issue["fields"]["status"]["statusCategory"]["key"]
    except (KeyError, TypeError):
        return None
    return key if isinstance(key, str) else None
