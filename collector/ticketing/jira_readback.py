"""Jira read-back: the issues linewarden raised, updated since the cursor, with comments and changelog.

Follows Atlassian's documentation:
- `POST /rest/api/3/search/jql` {jql, fields, expand: "changelog", maxResults, nextPageToken} ->
  {issues, nextPageToken, isLast}: token pagination, the next page asked with the previous answer's token
  (https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-search/#api-rest-api-3-search-jql-post);
- JQL dates `"yyyy-MM-dd HH:mm"` are read in the API user's profile time zone (`readback.timezone`), to the
  minute: the query starts at the cursor's minute, so a ticket read twice is applied once;
- fields: status {name, statusCategory.key new|indeterminate|done}, assignee {accountId, displayName},
  resolution {name}, resolutiondate, updated, labels, comment {comments: [{id, author, body (ADF), created}]};
  changelog.histories [{author, created, items: [{field}]}]
  (https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/#api-rest-api-3-issue-issueidorkey-get);
- 429 with Retry-After (https://developer.atlassian.com/cloud/jira/platform/rate-limiting/).
The first response is the earliest status or assignee change, or comment, not made by linewarden's user.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import httpx

from collector.ticketing.base import reveal
from collector.ticketing.jira import label_for
from collector.ticketing.readback import Page, Unreadable, VendorComment, VendorReader, VendorTicket
from collector.ticketing.readback_http import Budget, ReadbackHttp, Sleep
from collector.ticketing.vendor_http import HTTP_TIMEOUT_S
from linewarden.config.contract import JiraSink, Readback
from linewarden.errors import TicketError

FIELDS = ["status", "assignee", "resolution", "resolutiondate", "updated", "labels", "comment"]
_LABEL_PREFIX = label_for("")
_RESPONSE_FIELDS = frozenset({"status", "assignee"})


class JiraReader(VendorReader):
    kind: ClassVar[str] = "jira"

    def __init__(self, config: JiraSink, readback: Readback, budget: Budget | None = None,
                 sleep: Sleep | None = None) -> None:
        self._config = config
        self.readback = readback
        self._base = config.base_url.rstrip("/")
        self._zone = ZoneInfo(readback.timezone)
        auth = httpx.BasicAuth(config.user, reveal(config.api_token, "jira api_token"))
        client = httpx.AsyncClient(auth=auth, timeout=HTTP_TIMEOUT_S, headers={"Accept": "application/json"})
        self._client = client
        budget = budget or Budget(readback.requests_per_minute)
        self.http = ReadbackHttp(client, "jira", readback, budget, sleep or asyncio.sleep)

    def jql(self, cursor_ms: int) -> str:
        since = datetime.fromtimestamp(cursor_ms / 1000, self._zone).strftime("%Y-%m-%d %H:%M")
        return f'project = "{self._config.project_key}" AND updated >= "{since}" ORDER BY updated ASC, key ASC'

    async def changed_since(self, cursor_ms: int, page: Page) -> None:
        body: dict[str, Any] = {"jql": self.jql(cursor_ms), "fields": FIELDS, "expand": "changelog",
                                "maxResults": self.readback.page_size}
        tokens: set[str] = set()
        for _ in range(self.readback.max_pages):
            answer, _ = await self.http.json("POST", self._base + "/rest/api/3/search/jql", body=body)
            issues = answer.get("issues") if isinstance(answer, dict) else None
            if not isinstance(issues, list) or len(issues) > self.readback.page_size:
                raise TicketError(f"jira: search answer has no issues list of at most {self.readback.page_size}")
            for issue in issues:
                page.tickets.append(self.parse(issue))
            token = answer.get("nextPageToken")
            if answer.get("isLast", True) or not isinstance(token, str) or not token:
                return
            if token in tokens:
                raise TicketError("jira: search answers a page token it gave before")
            tokens.add(token)
            body = {**body, "nextPageToken": token}
        page.complete = False

    def parse(self, issue: Any) -> VendorTicket | Unreadable:
        key = issue.get("key") if isinstance(issue, dict) else None
        if not isinstance(key, str) or not key:
            return Unreadable("?", "an issue without a key")
        try:
            return self._ticket(key, issue)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return Unreadable(key, f"{type(exc).__name__}: {str(exc)[:120]}")

    def _ticket(self, key: str, issue: dict[str, Any]) -> VendorTicket:
        fields = issue["fields"]
        labels = [x for x in fields.get("labels") or [] if isinstance(x, str) and x.startswith(_LABEL_PREFIX)]
        status = fields["status"]
        category = status["statusCategory"]["key"]
        assignee = fields.get("assignee")
        comments = tuple(self._comment(c) for c in (fields.get("comment") or {}).get("comments") or [])
        responses = [c.created_at for c in comments if not c.ours]
        for history in (issue.get("changelog") or {}).get("histories") or []:
            items = {str(item.get("field")) for item in history.get("items") or []}
            if items & _RESPONSE_FIELDS and not self._ours(history.get("author")):
                responses.append(_ms(history["created"]))
        updated = _ms(fields["updated"])
        named = str(status.get("name", ""))
        if not responses and (assignee or category != "new" or named in self.readback.acknowledged_statuses):
            responses.append(updated)  # answered, but the changelog was cut short: the update is the bound
        resolution = fields.get("resolution")
        return VendorTicket(
            vendor_id=key,
            display=key,
            incident=labels[0][len(_LABEL_PREFIX):] if labels else None,
            status=named,
            done=category == "done",
            assignee=str(assignee.get("displayName") or assignee.get("accountId")) if assignee else None,
            responded_at=min(responses) if responses else None,
            resolved_at=_ms(fields["resolutiondate"]) if fields.get("resolutiondate") else None,
            resolution=str(resolution.get("name", "")) if isinstance(resolution, dict) else "",
            updated_at=updated,
            comments=comments,
        )

    def _ours(self, author: Any) -> bool:
        return isinstance(author, dict) and author.get("emailAddress") == self._config.user

    def _comment(self, comment: Any) -> VendorComment:
        author = comment.get("author") or {}
        return VendorComment(
            id=str(comment["id"]),
            author=str(author.get("displayName") or author.get("accountId") or "?"),
            ours=self._ours(author),
            body=adf_text(comment.get("body")),
            created_at=_ms(comment["created"]),
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def adf_text(doc: Any, depth: int = 0) -> str:
    """The text of an Atlassian Document Format node, paragraphs on their own lines (nesting bounded)."""
    if depth > 20 or not isinstance(doc, dict):
        return ""
    if doc.get("type") == "text":
        return str(doc.get("text", ""))
    parts = [adf_text(child, depth + 1) for child in doc.get("content") or [] if isinstance(child, dict)]
    return ("\n" if doc.get("type") == "doc" else "").join(parts)


def _ms(text: Any) -> int:
    if not isinstance(text, str):
        raise ValueError("a time that is not a string")
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError(f"a time without a zone: {text[:40]!r}")
    return int(when.timestamp() * 1000)
