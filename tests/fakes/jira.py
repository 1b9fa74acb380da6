"""Fake Jira Cloud / JSM: the REST v3 and servicedeskapi calls the jira sink makes, checked as Atlassian documents
them (basic auth with e-mail and API token, JSON bodies, ADF descriptions and comments), and the read-back
search: `POST /rest/api/3/search/jql` with `project = "K" AND updated >= "yyyy-MM-dd HH:mm"` (the API user's
zone is UTC here), `fields` a list of names, `expand` a comma-separated string, `maxResults` 1..5000 and token
pagination (`nextPageToken` given back only as received; `isLast`). The vendor's own people act through
`vendor_*`; `now_ms` is the fake's clock; `limit_next` answers 429 with Retry-After; `search_reply` replaces
the search answer (a hostile vendor)."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tests.fakes.server import FakeVendor, Rejected, Reply, Request, basic_auth, require_json

_LABEL = re.compile(r'labels\s*=\s*"([^"]+)"')
_UPDATED = re.compile(r'^project = "([A-Z][A-Z0-9]*)" AND updated >= "(\d{4}-\d{2}-\d{2} \d{2}:\d{2})"'
                      r" ORDER BY updated ASC, key ASC$")
_FIELDS = {"status", "assignee", "resolution", "resolutiondate", "updated", "labels", "comment", "created"}
_EXPAND = {"renderedFields", "names", "schema", "transitions", "operations", "editmeta", "changelog",
           "versionedRepresentations"}
STATUSES = {"open": ("Open", "new"), "in_progress": ("In Progress", "indeterminate"), "resolved": ("Resolved", "done")}
_ISSUE = re.compile(r"^/rest/api/3/issue/([A-Z][A-Z0-9]*-\d+)(/comment|/transitions)?$")
TRANSITIONS = [{"id": "11", "name": "In Progress"}, {"id": "31", "name": "Resolve"}]


def _error(status: int, message: str, field: str | None = None) -> Rejected:
    return Rejected(status, {"errorMessages": [] if field else [message], "errors": {field: message} if field else {}})


def _is_adf(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and doc.get("type") == "doc"
        and doc.get("version") == 1
        and isinstance(doc.get("content"), list)
    )


class FakeJira(FakeVendor):
    def __init__(
        self, user: str, token: str, project: str = "PLCSUP", service_desk: str = "4", request_type: str = "25"
    ):
        super().__init__()
        self._auth = basic_auth(user, token)
        self.project = project
        self._desk = (service_desk, request_type)
        self.user = user
        self.issues: dict[str, dict[str, Any]] = {}  # key -> {fields, comments, status, history, ...}
        self.now_ms: int | None = None
        self.search_reply: Callable[[dict[str, Any]], Reply] | None = None
        self._limited: list[str] = []

    def clock(self) -> int:
        return self.now_ms if self.now_ms is not None else int(time.time() * 1000)

    def limit_next(self, count: int, retry_after: str = "1") -> None:
        with self.lock:
            self._limited.extend([retry_after] * count)

    def _new_issue(self, fields: dict[str, Any]) -> str:
        with self.lock:
            key = f"{self.project}-{len(self.issues) + 1}"
            now = self.clock()
            self.issues[key] = {"fields": fields, "comments": [], "status": "open", "history": [],
                                "assignee": None, "created": now, "updated": now, "resolved": None}
        self.maybe_stall()
        return key

    # ------------------------------------------------------------ the vendor's people

    def _touch(self, issue: dict[str, Any], at: int | None) -> int:
        when = self.clock() if at is None else at
        issue["updated"] = max(issue["updated"], when)
        return when

    def vendor_assign(self, key: str, name: str, at: int | None = None) -> None:
        with self.lock:
            issue = self.issues[key]
            when = self._touch(issue, at)
            issue["assignee"] = {"accountId": f"acc-{name}", "displayName": name}
            issue["history"].append(_history(when, name, "assignee"))

    def vendor_comment(self, key: str, name: str, text: str, at: int | None = None) -> None:
        with self.lock:
            issue = self.issues[key]
            when = self._touch(issue, at)
            issue["comments"].append({"body": _adf(text), "author": _person(name), "created": when})

    def vendor_transition(self, key: str, status: str, name: str, at: int | None = None) -> None:
        """`status`: open, in_progress or resolved."""
        with self.lock:
            issue = self.issues[key]
            when = self._touch(issue, at)
            issue["status"] = status
            issue["resolved"] = when if status == "resolved" else None
            issue["history"].append(_history(when, name, "status"))

    def _search_view(self, key: str, issue: dict[str, Any], fields: list[str], changelog: bool) -> dict[str, Any]:
        name, category = STATUSES[issue["status"]]
        every: dict[str, Any] = {
            "status": {"name": name, "statusCategory": {"key": category}},
            "assignee": issue["assignee"],
            "resolution": {"name": "Done"} if issue["resolved"] is not None else None,
            "resolutiondate": _jira_time(issue["resolved"]) if issue["resolved"] is not None else None,
            "updated": _jira_time(issue["updated"]),
            "created": _jira_time(issue["created"]),
            "labels": issue["fields"].get("labels", []),
            "comment": {"comments": [
                {"id": str(i + 1), "author": c["author"], "body": c["body"], "created": _jira_time(c["created"])}
                for i, c in enumerate(issue["comments"])
            ], "total": len(issue["comments"])},
        }
        view: dict[str, Any] = {"id": str(10000 + int(key.split("-")[1])), "key": key,
                                "fields": {f: every[f] for f in fields}}
        if changelog:
            view["changelog"] = {"histories": list(issue["history"])}
        return view

    def _updated_search(self, body: dict[str, Any], m: re.Match[str]) -> Reply:
        if m.group(1) != self.project:
            raise _error(400, f"The value '{m.group(1)}' does not exist for the field 'project'.")
        fields = body.get("fields", [])
        if not isinstance(fields, list) or not all(isinstance(f, str) and f in _FIELDS for f in fields):
            raise _error(400, "fields must be a list of field names", "fields")
        expand = body.get("expand", "")
        if not isinstance(expand, str) or not {e for e in expand.split(",") if e} <= _EXPAND:
            raise _error(400, "expand must be a comma-separated string of expansions", "expand")
        size = body.get("maxResults", 50)
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 5000:
            raise _error(400, "maxResults must be between 1 and 5000", "maxResults")
        token = body.get("nextPageToken")
        offset = 0
        if token is not None:
            try:
                offset = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("page:"))
            except (ValueError, AttributeError):
                raise _error(400, "The provided next page token is invalid or expired.") from None
        since = int(datetime.strptime(m.group(2), "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp() * 1000)
        with self.lock:
            hits = sorted(((i["updated"], k) for k, i in self.issues.items() if i["updated"] >= since),
                          key=lambda x: (x[0], int(x[1].split("-")[1])))
            shown = [self._search_view(k, self.issues[k], fields, "changelog" in expand)
                     for _, k in hits[offset: offset + size]]
        answer: dict[str, Any] = {"issues": shown, "isLast": offset + size >= len(hits)}
        if not answer["isLast"]:
            answer["nextPageToken"] = base64.urlsafe_b64encode(f"page:{offset + size}".encode()).decode()
        return Reply(200, answer)

    def handle(self, req: Request) -> Reply:
        if req.headers.get("Authorization") != self._auth:
            raise _error(401, "Client must be authenticated to access this resource.")
        if req.method == "POST" and req.path == "/rest/api/3/search/jql":
            body = require_json(req)
            jql = body.get("jql")
            if not isinstance(jql, str) or not jql:
                raise _error(400, "jql is required", "jql")
            updated = _UPDATED.match(jql)
            if updated is not None:
                with self.lock:
                    limited = self._limited.pop(0) if self._limited else None
                if limited is not None:
                    raise Rejected(429, {"errorMessages": ["Rate limit exceeded"]}, {"Retry-After": limited})
                if self.search_reply is not None:
                    return self.search_reply(body)
                return self._updated_search(body, updated)
            if _LABEL.search(jql) is None:
                raise _error(400, f"Error in the JQL Query: {jql[:80]}", "jql")
            m = _LABEL.search(jql)
            with self.lock:
                hits = [k for k, i in self.issues.items() if m and m.group(1) in i["fields"].get("labels", [])]
            issues = [{"id": str(10000 + int(k.split("-")[1])), "key": k, "fields": {}} for k in hits]
            return Reply(200, {"issues": issues[: body.get("maxResults", 50)]})
        if req.method == "POST" and req.path == "/rest/api/3/issue":
            fields = require_json(req).get("fields") or {}
            if fields.get("project", {}).get("key") != self.project:
                raise _error(400, "valid project is required", "project")
            if not fields.get("issuetype", {}).get("name"):
                raise _error(400, "Specify an issue type", "issuetype")
            summary = fields.get("summary")
            if not isinstance(summary, str) or not summary or len(summary) > 255:
                raise _error(400, "You must specify a summary of the issue.", "summary")
            if "description" in fields and not _is_adf(fields["description"]):
                raise _error(400, "Operation value must be an Atlassian Document.", "description")
            if not all(isinstance(label, str) and " " not in label for label in fields.get("labels", [])):
                raise _error(400, "labels cannot contain spaces", "labels")
            key = self._new_issue(fields)
            return Reply(
                201, {"id": str(10000 + int(key.split("-")[1])), "key": key, "self": f"/rest/api/3/issue/{key}"}
            )
        if req.method == "POST" and req.path == "/rest/servicedeskapi/request":
            body = require_json(req)
            if (str(body.get("serviceDeskId")), str(body.get("requestTypeId"))) != self._desk:
                raise _error(400, "The service desk or request type does not exist.")
            values = body.get("requestFieldValues") or {}
            if not isinstance(values.get("summary"), str) or not values["summary"]:
                raise _error(400, "Summary is required", "summary")
            key = self._new_issue(values)
            return Reply(201, {"issueId": str(10000 + int(key.split("-")[1])), "issueKey": key})
        m = _ISSUE.match(req.path)
        if m is None:
            raise _error(404, f"no such resource {req.method} {req.path}")
        key, sub = m.group(1), m.group(2)
        with self.lock:
            issue = self.issues.get(key)
        if issue is None:
            raise _error(404, "Issue does not exist or you do not have permission to see it.")
        if sub is None and req.method == "PUT":
            fields = require_json(req).get("fields") or {}
            with self.lock:
                issue["fields"].update(fields)
            return Reply(204)
        if sub is None and req.method == "GET":
            category = "done" if issue["status"] == "resolved" else "new"
            return Reply(200, {"key": key, "fields": {"status": {"statusCategory": {"key": category}}}})
        if sub == "/comment" and req.method == "POST":
            body = require_json(req).get("body")
            if not _is_adf(body):
                raise _error(400, "Comment body must be an Atlassian Document.", "comment")
            with self.lock:
                issue["comments"].append({"body": body, "author": _person(self.user, self.user),
                                          "created": self._touch(issue, None)})
            return Reply(201, {"id": str(len(issue["comments"]))})
        if sub == "/transitions" and req.method == "GET":
            available = [] if issue["status"] == "resolved" else TRANSITIONS
            return Reply(200, {"transitions": available})
        if sub == "/transitions" and req.method == "POST":
            tid = (require_json(req).get("transition") or {}).get("id")
            if tid not in {t["id"] for t in TRANSITIONS} or issue["status"] == "resolved":
                raise _error(400, "Transition id is not valid for this issue.")
            with self.lock:
                issue["status"] = "resolved" if tid == "31" else "in_progress"
                when = self._touch(issue, None)
                issue["resolved"] = when if tid == "31" else None
                issue["history"].append(_history(when, self.user, "status", self.user))
            return Reply(204)
        raise _error(405, f"method {req.method} not allowed on {req.path}")


def _person(name: str, email: str | None = None) -> dict[str, Any]:
    person = {"accountId": f"acc-{name}", "displayName": name}
    return {**person, "emailAddress": email} if email else person


def _history(at: int, name: str, field: str, email: str | None = None) -> dict[str, Any]:
    return {"id": str(at), "author": _person(name, email), "created": _jira_time(at),
            "items": [{"field": field, "fieldtype": "jira"}]}


def _adf(text: str) -> dict[str, Any]:
    paragraph = {"type": "paragraph", "content": [{"type": "text", "text": text}]}
    return {"type": "doc", "version": 1, "content": [paragraph]}


def _jira_time(ms: int) -> str:
    """Jira's time format: 2026-05-28T06:02:00.000+0000."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}+0000"
