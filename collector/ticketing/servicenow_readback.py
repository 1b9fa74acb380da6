"""ServiceNow read-back: incidents linewarden raised (correlation_display=linewarden), updated since the cursor,
and their comments from the journal.

Follows ServiceNow's Table API documentation
(https://developer.servicenow.com/dev.do#!/reference/api/zurich/rest/c_TableAPI):
- `GET /api/now/table/incident` with `sysparm_query` (encoded query: `correlation_display=linewarden
  ^sys_updated_on>=<yyyy-MM-dd HH:mm:ss>^ORDERBYsys_updated_on`), `sysparm_fields`, `sysparm_limit`,
  `sysparm_offset`, `sysparm_exclude_reference_link=true`, `sysparm_display_value=false` -> 200 {result: [...]}
  with `X-Total-Count`; offset pagination until a short page or the total;
- journal entries `GET /api/now/table/sys_journal_field` (`name=incident^element=comments^element_idIN<sys_ids>`)
  -> {result: [{sys_id, element_id, value, sys_created_on, sys_created_by}]};
- times without a zone are in the integration user's time zone (`readback.timezone`; UTC recommended);
- state 1 New, 2 In Progress, 3 On Hold, 6 Resolved, 7 Closed, 8 Canceled; rate limit rules answer 429 with
  Retry-After (https://www.servicenow.com/docs/r/zurich/api-reference/rest-apis/inbound-REST-API-rate-limiting.html).
The first response is `work_start`, else the earliest comment not by linewarden's user, else the update that
showed the incident assigned or past New.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import httpx

from collector.ticketing.base import reveal
from collector.ticketing.readback import Page, Unreadable, VendorComment, VendorReader, VendorTicket
from collector.ticketing.readback_http import Budget, ReadbackHttp, Sleep
from collector.ticketing.servicenow import TABLE
from collector.ticketing.vendor_http import HTTP_TIMEOUT_S
from linewarden.config.contract import Readback, ServiceNowSink
from linewarden.errors import TicketError

JOURNAL = "/api/now/table/sys_journal_field"
FIELDS = "sys_id,number,state,assigned_to,correlation_id,sys_updated_on,resolved_at,close_code,close_notes,work_start"
STATES = {"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved", "7": "Closed", "8": "Canceled"}
JOURNAL_FIELDS = "sys_id,element_id,value,sys_created_on,sys_created_by"
DONE = frozenset({"6", "7"})
_FORMAT = "%Y-%m-%d %H:%M:%S"


class ServiceNowReader(VendorReader):
    kind: ClassVar[str] = "servicenow"

    def __init__(self, config: ServiceNowSink, readback: Readback, budget: Budget | None = None,
                 sleep: Sleep | None = None) -> None:
        self._config = config
        self.readback = readback
        self._base = config.instance_url.rstrip("/")
        self._zone = ZoneInfo(readback.timezone)
        auth = httpx.BasicAuth(config.user, reveal(config.password, "servicenow password"))
        self._client = httpx.AsyncClient(auth=auth, timeout=HTTP_TIMEOUT_S, headers={"Accept": "application/json"})
        budget = budget or Budget(readback.requests_per_minute)
        self.http = ReadbackHttp(self._client, "servicenow", readback, budget, sleep or asyncio.sleep)

    def query(self, cursor_ms: int) -> str:
        since = datetime.fromtimestamp(cursor_ms / 1000, self._zone).strftime(_FORMAT)
        return f"correlation_display=linewarden^sys_updated_on>={since}^ORDERBYsys_updated_on^ORDERBYsys_id"

    async def _pages(self, path: str, query: str, fields: str, page: Page) -> tuple[list[Any], TicketError | None]:
        """Records of every page (at most `max_pages`), and what stopped the paging early, if anything."""
        limit = self.readback.page_size
        out: list[Any] = []
        seen: set[Any] = set()
        try:
            for number in range(self.readback.max_pages):
                params = {"sysparm_query": query, "sysparm_fields": fields, "sysparm_limit": str(limit),
                          "sysparm_offset": str(number * limit), "sysparm_exclude_reference_link": "true",
                          "sysparm_display_value": "false"}
                answer, headers = await self.http.json("GET", self._base + path, params=params)
                records = answer.get("result") if isinstance(answer, dict) else None
                if not isinstance(records, list) or len(records) > limit:
                    raise TicketError(f"servicenow: {path} answer has no result list of at most {limit} records")
                ids = {r.get("sys_id") for r in records if isinstance(r, dict)}
                if records and ids <= seen:
                    raise TicketError(f"servicenow: {path} answers the same records for another sysparm_offset")
                seen |= ids
                out.extend(records)
                total = headers.get("X-Total-Count", "")
                if len(records) < limit or (total.isdigit() and (number + 1) * limit >= int(total)):
                    return out, None
        except TicketError as exc:
            page.complete = False
            return out, exc
        page.complete = False
        return out, None

    async def changed_since(self, cursor_ms: int, page: Page) -> None:
        records, problem = await self._pages(TABLE, self.query(cursor_ms), FIELDS, page)
        ids = [r["sys_id"] for r in records if isinstance(r, dict) and isinstance(r.get("sys_id"), str)]
        comments: dict[str, list[VendorComment]] = {}
        if ids:
            journal = "name=incident^element=comments^element_idIN" + ",".join(ids) + "^ORDERBYsys_created_on"
            entries, failed = await self._pages(JOURNAL, journal, JOURNAL_FIELDS, Page())
            if failed is not None:
                raise failed  # applied without their comments, the incidents' cursor would pass the comments
            for entry in entries:
                try:
                    comments.setdefault(str(entry["element_id"]), []).append(self._comment(entry))
                except (KeyError, TypeError, ValueError):
                    continue  # a journal entry that does not parse is not a comment we can show
        for record in records:
            page.tickets.append(self.parse(record, comments))
        if problem is not None:
            raise problem

    def parse(self, record: Any, comments: dict[str, list[VendorComment]]) -> VendorTicket | Unreadable:
        sys_id = record.get("sys_id") if isinstance(record, dict) else None
        if not isinstance(sys_id, str) or not sys_id:
            return Unreadable("?", "a record without sys_id")
        try:
            return self._ticket(sys_id, record, tuple(comments.get(sys_id, ())))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return Unreadable(sys_id, f"{type(exc).__name__}: {str(exc)[:120]}")

    def _ticket(self, sys_id: str, record: dict[str, Any], comments: tuple[VendorComment, ...]) -> VendorTicket:
        state = str(record["state"])
        updated = self._ms(record["sys_updated_on"])
        assignee = record.get("assigned_to") or None
        status = STATES.get(state, state)
        responses = [c.created_at for c in comments if not c.ours]
        if record.get("work_start"):
            responses.append(self._ms(record["work_start"]))
        answered = assignee or state != "1" or status in self.readback.acknowledged_statuses
        if not responses and answered:
            responses.append(updated)
        correlation = record.get("correlation_id")
        return VendorTicket(
            vendor_id=sys_id,
            display=str(record.get("number") or sys_id),
            incident=correlation if isinstance(correlation, str) and correlation else None,
            status=status,
            done=state in DONE,
            assignee=str(assignee) if assignee else None,
            responded_at=min(responses) if responses else None,
            resolved_at=self._ms(record["resolved_at"]) if record.get("resolved_at") else None,
            resolution=" - ".join(str(record.get(f) or "") for f in ("close_code", "close_notes")).strip(" -"),
            updated_at=updated,
            comments=comments,
        )

    def _comment(self, entry: dict[str, Any]) -> VendorComment:
        author = str(entry.get("sys_created_by") or "?")
        return VendorComment(str(entry["sys_id"]), author, author == self._config.user, str(entry.get("value", "")),
                             self._ms(entry["sys_created_on"]))

    def _ms(self, text: Any) -> int:
        if not isinstance(text, str):
            raise ValueError("a time that is not a string")
        return int(datetime.strptime(text, _FORMAT).replace(tzinfo=self._zone).timestamp() * 1000)

    async def aclose(self) -> None:
        await self._client.aclose()

