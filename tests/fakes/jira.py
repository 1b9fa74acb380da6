"""Fake Jira Cloud / JSM: the REST v3 and servicedeskapi calls the jira sink makes, checked as Atlassian documents
them (basic auth with e-mail and API token, JSON bodies, ADF descriptions and comments)."""

from __future__ import annotations

import re
from typing import Any

from tests.fakes.server import FakeVendor, Rejected, Reply, Request, basic_auth, require_json

_LABEL = re.compile(r'labels\s*=\s*"([^"]+)"')
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
        self.issues: dict[str, dict[str, Any]] = {}  # key -> {fields, comments, status}

    def _new_issue(self, fields: dict[str, Any]) -> str:
        with self.lock:
            key = f"{self.project}-{len(self.issues) + 1}"
            self.issues[key] = {"fields": fields, "comments": [], "status": "open"}
        self.maybe_stall()
        return key

    def handle(self, req: Request) -> Reply:
        if req.headers.get("Authorization") != self._auth:
            raise _error(401, "Client must be authenticated to access this resource.")
        if req.method == "POST" and req.path == "/rest/api/3/search/jql":
            body = require_json(req)
            jql = body.get("jql")
            if not isinstance(jql, str) or not jql:
                raise _error(400, "jql is required", "jql")
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
                issue["comments"].append(body)
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
            return Reply(204)
        raise _error(405, f"method {req.method} not allowed on {req.path}")
