"""Fake ServiceNow: the Table API on the incident table, checked as ServiceNow documents it (basic auth, JSON
bodies, sysparm_query look-ups, `{"result": ...}` answers, `{"error": ..., "status": "failure"}` refusals).

Read-back: GET on incident and sys_journal_field with encoded queries (`field=value`, `field>=value`,
`fieldINa,b`, `ORDERBYfield`, joined by `^`; a term it cannot read is refused, where a real instance would
silently drop it and answer every record), `sysparm_limit` (1..10000) / `sysparm_offset` paging with
`X-Total-Count`, `sysparm_fields`, `sysparm_exclude_reference_link` and `sysparm_display_value` checked.
Times are "yyyy-MM-dd HH:mm:ss" in the integration user's zone (UTC here). The vendor's own people act through
`vendor_*`; `now_ms` is the fake's clock; `limit_next` answers 429 with Retry-After; `table_reply` replaces
the incident list answer (a hostile vendor)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tests.fakes.server import FakeVendor, Rejected, Reply, Request, basic_auth, require_json

TABLE = "/api/now/table/incident"
JOURNAL = "/api/now/table/sys_journal_field"
_TERM = re.compile(r"^(ORDERBY(?:DESC)?)([a-z_]+)$|^([a-z_]+)(>=|=|IN)(.*)$")
_BOOLEAN = {"true", "false"}


def snow_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _matches(record: dict[str, Any], terms: list[tuple[str, str, str]]) -> bool:
    for field, op, value in terms:
        have = str(record.get(field) or "")
        refused = {"=": have != value, ">=": have < value, "IN": have not in value.split(",")}
        if refused[op]:
            return False
    return True


def _error(status: int, message: str, detail: str = "") -> Rejected:
    return Rejected(status, {"error": {"message": message, "detail": detail}, "status": "failure"})


class FakeServiceNow(FakeVendor):
    def __init__(self, user: str, password: str) -> None:
        super().__init__()
        self._auth = basic_auth(user, password)
        self.user = user
        self.incidents: dict[str, dict[str, Any]] = {}  # sys_id -> record
        self.journal: list[dict[str, Any]] = []
        self.now_ms: int | None = None
        self.table_reply: Callable[[dict[str, list[str]]], Reply] | None = None
        self._limited: list[str] = []

    def clock(self) -> int:
        return self.now_ms if self.now_ms is not None else int(time.time() * 1000)

    def limit_next(self, count: int, retry_after: str = "1") -> None:
        with self.lock:
            self._limited.extend([retry_after] * count)

    def _touch(self, record: dict[str, Any], at: int | None) -> int:
        when = self.clock() if at is None else at
        record["sys_updated_on"] = max(record["sys_updated_on"], snow_time(when))
        return when

    def _journal(self, record: dict[str, Any], element: str, text: str, by: str, at: int) -> None:
        self.journal.append({"sys_id": uuid.uuid4().hex, "name": "incident", "element": element,
                             "element_id": record["sys_id"], "value": text, "sys_created_on": snow_time(at),
                             "sys_created_by": by})

    # ------------------------------------------------------------ the vendor's people

    def vendor_assign(self, sys_id: str, user_sys_id: str, at: int | None = None) -> None:
        with self.lock:
            record = self.incidents[sys_id]
            self._touch(record, at)
            record["assigned_to"] = user_sys_id

    def vendor_comment(self, sys_id: str, user: str, text: str, at: int | None = None) -> None:
        with self.lock:
            record = self.incidents[sys_id]
            self._journal(record, "comments", text, user, self._touch(record, at))

    def vendor_state(self, sys_id: str, state: str, at: int | None = None, notes: str = "") -> None:
        with self.lock:
            record = self.incidents[sys_id]
            when = self._touch(record, at)
            record["state"] = state
            if state == "2" and not record.get("work_start"):
                record["work_start"] = snow_time(when)
            if state == "6":
                record.update(resolved_at=snow_time(when), close_code="Solution provided", close_notes=notes)

    def _list(self, req: Request, rows: list[dict[str, Any]]) -> Reply:
        query = req.query
        for name in ("sysparm_exclude_reference_link",):
            if name in query and query[name][0] not in _BOOLEAN:
                raise _error(400, f"{name} must be true or false")
        if "sysparm_display_value" in query and query["sysparm_display_value"][0] not in {*_BOOLEAN, "all"}:
            raise _error(400, "sysparm_display_value must be true, false or all")
        try:
            limit = int((query.get("sysparm_limit") or ["10000"])[0])
            offset = int((query.get("sysparm_offset") or ["0"])[0])
        except ValueError:
            raise _error(400, "sysparm_limit and sysparm_offset are integers") from None
        if not 1 <= limit <= 10000 or offset < 0:
            raise _error(400, "sysparm_limit is 1..10000, sysparm_offset not negative")
        terms: list[tuple[str, str, str]] = []
        order: list[str] = []
        for term in (query.get("sysparm_query") or [""])[0].split("^"):
            if not term:
                continue
            m = _TERM.match(term)
            if m is None:
                raise _error(400, f"Invalid encoded query term: {term[:60]}")
            if m.group(1):
                order.append(m.group(2))
            else:
                terms.append((m.group(3), m.group(4), m.group(5)))
        with self.lock:
            hits = [dict(r) for r in rows if _matches(r, terms)]
        for key in reversed(order):
            hits.sort(key=lambda r: str(r.get(key) or ""))
        fields = [f for f in (query.get("sysparm_fields") or [""])[0].split(",") if f]
        shown = [{f: r.get(f) for f in fields} if fields else r for r in hits[offset: offset + limit]]
        return Reply(200, {"result": shown}, {"X-Total-Count": str(len(hits))})

    def handle(self, req: Request) -> Reply:
        if req.headers.get("Authorization") != self._auth:
            raise _error(401, "User Not Authenticated", "Required to provide Auth information")
        if "application/json" not in (req.headers.get("Accept") or ""):
            raise _error(406, "Accept must allow application/json")
        if req.path in (TABLE, JOURNAL) and req.method == "GET":
            with self.lock:
                limited = self._limited.pop(0) if self._limited else None
            if limited is not None:
                raise Rejected(429, {"error": {"message": "Rate limit exceeded"}, "status": "failure"},
                               {"Retry-After": limited})
            if req.path == TABLE and self.table_reply is not None and "sys_updated_on" in str(req.query):
                return self.table_reply(req.query)
            return self._list(req, list(self.incidents.values()) if req.path == TABLE else self.journal)
        if req.path == TABLE and req.method == "POST":
            body = require_json(req, 400, {"error": {"message": "Request body must be JSON"}, "status": "failure"})
            if not isinstance(body.get("short_description"), str) or not body["short_description"]:
                raise _error(400, "Mandatory field missing", "short_description")
            if body.get("impact") not in {"1", "2", "3"} or body.get("urgency") not in {"1", "2", "3"}:
                raise _error(400, "impact and urgency are 1, 2 or 3")
            with self.lock:
                sys_id = uuid.uuid4().hex
                record = {**body, "sys_id": sys_id, "number": f"INC{10001 + len(self.incidents):07d}", "state": "1",
                          "sys_updated_on": snow_time(self.clock()), "assigned_to": "", "resolved_at": "",
                          "work_start": ""}
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
                when = self._touch(found, None)
                for journal in ("work_notes", "comments"):
                    if journal in body:
                        text = body.pop(journal)
                        found[f"{journal}_log"].append(text)
                        self._journal(found, journal, text, self.user, when)
                if body.get("state") == "6":
                    found["resolved_at"] = snow_time(when)
                found.update(body)
            return Reply(200, {"result": found})
        raise _error(400, f"Requested URI does not represent any resource: {req.path}")
