"""Fake ServiceNow: the Table API on the incident table, checked as ServiceNow documents it (basic auth, JSON
bodies, sysparm_query look-ups, `{"result": ...}` answers, `{"error": ..., "status": "failure"}` refusals)."""

from __future__ import annotations

import uuid
from typing import Any

from tests.fakes.server import FakeVendor, Rejected, Reply, Request, basic_auth, require_json

TABLE = "/api/now/table/incident"


def _error(status: int, message: str, detail: str = "") -> Rejected:
    return Rejected(status, {"error": {"message": message, "detail": detail}, "status": "failure"})


class FakeServiceNow(FakeVendor):
    def __init__(self, user: str, password: str) -> None:
        super().__init__()
        self._auth = basic_auth(user, password)
        self.incidents: dict[str, dict[str, Any]] = {}  # sys_id -> record

    def handle(self, req: Request) -> Reply:
        if req.headers.get("Authorization") != self._auth:
            raise _error(401, "User Not Authenticated", "Required to provide Auth information")
        if "application/json" not in (req.headers.get("Accept") or ""):
            raise _error(406, "Accept must allow application/json")
        if req.path == TABLE and req.method == "GET":
            query = (req.query.get("sysparm_query") or [""])[0]
            field, _, value = query.partition("=")
            limit = int((req.query.get("sysparm_limit") or ["10000"])[0])
            with self.lock:
                hits = [r for r in self.incidents.values() if field and r.get(field) == value]
            fields = [f for f in (req.query.get("sysparm_fields") or [""])[0].split(",") if f]
            shown = [{f: r.get(f) for f in fields} if fields else r for r in hits[:limit]]
            return Reply(200, {"result": shown})
        if req.path == TABLE and req.method == "POST":
            body = require_json(req, 400, {"error": {"message": "Request body must be JSON"}, "status": "failure"})
            if not isinstance(body.get("short_description"), str) or not body["short_description"]:
                raise _error(400, "Mandatory field missing", "short_description")
            if body.get("impact") not in {"1", "2", "3"} or body.get("urgency") not in {"1", "2", "3"}:
                raise _error(400, "impact and urgency are 1, 2 or 3")
            with self.lock:
                sys_id = uuid.uuid4().hex
                record = {**body, "sys_id": sys_id, "number": f"INC{10001 + len(self.incidents):07d}", "state": "1"}
                record["work_notes_log"], record["comments_log"] = [], []
                self.incidents[sys_id] = record
            self.maybe_stall()
            return Reply(201, {"result": record}, {"Location": f"{TABLE}/{sys_id}"})
        if req.path.startswith(TABLE + "/") and req.method == "PATCH":
            sys_id = req.path.rsplit("/", 1)[1]
            body = require_json(req, 400, {"error": {"message": "Request body must be JSON"}, "status": "failure"})
            with self.lock:
                found = self.incidents.get(sys_id)
                if found is None:
                    raise _error(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
                if body.get("state") == "6" and not (body.get("close_code") and body.get("close_notes")):
                    raise _error(
                        403, "Operation Failed", "Data Policy Exception: close_code and close_notes are mandatory"
                    )
                for journal in ("work_notes", "comments"):
                    if journal in body:
                        found[f"{journal}_log"].append(body.pop(journal))
                found.update(body)
            return Reply(200, {"result": found})
        raise _error(400, f"Requested URI does not represent any resource: {req.path}")
