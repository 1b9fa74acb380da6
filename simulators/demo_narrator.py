"""The demo's progress lines: elapsed time and what just happened, in plain words, read from what the
collector stored (state changes, incidents and the audit log), so the story shown is the story recorded."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from collector.store import Store

POLL_S = 0.2


class Narrator:
    """`say(text)` prints `[mm:ss] text`, the time counted from the narrator's creation."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self._start = time.monotonic()
        self._out = out

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def say(self, text: str) -> None:
        seconds = int(self.elapsed())
        print(f"[{seconds // 60:02d}:{seconds % 60:02d}] {text}", file=self._out, flush=True)


class StoreWatcher:
    """Narrates new rows of the collector's store: state changes, opened incidents, routing and ticket steps."""

    def __init__(self, store: Store, narrator: Narrator, asset_names: Mapping[str, str], fail_threshold: int) -> None:
        self._store = store
        self._say = narrator.say
        self._names = asset_names
        self._fails = fail_threshold
        self._seen_changes: set[tuple[str, str, int]] = set()
        self._seen_incidents: set[str] = set()
        self._audit_id = 0
        self._ever_bad: set[str] = set()

    def name(self, asset: str) -> str:
        label = self._names.get(asset)
        return f"{asset} ({label})" if label else asset

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.poll()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)
        self.poll()

    def poll(self) -> None:
        with self._store.reader() as sql:
            changes = sql.query("SELECT * FROM state_changes ORDER BY at, seq")
            incidents = sql.query("SELECT * FROM incidents WHERE opened_at IS NOT NULL ORDER BY opened_at")
            audit = sql.query("SELECT * FROM audit_log WHERE id > ? ORDER BY id", (self._audit_id,))
        for c in changes:
            key = (c["agent"], c["epoch"], int(c["seq"]))
            if key not in self._seen_changes:
                self._seen_changes.add(key)
                self._state_change(c)
        for i in incidents:
            if i["id"] not in self._seen_incidents:
                self._seen_incidents.add(i["id"])
                self._say(f"incident {i['id'][:8]} opened on {i['asset']}: severity {i['severity']} "
                          f"({i['criticality']} asset, {str(i['state']).lower()}, "
                          f"{'in' if i['in_production'] else 'outside'} production)")
        for a in audit:
            self._audit_id = max(self._audit_id, int(a["id"]))
            self._audit(a["action"], str(a["object"]), _details(a["details"]))

    def _state_change(self, c: Mapping[str, Any]) -> None:
        asset, to, before = c["asset"], c["to_state"], c["from_state"]
        if to == "UP" and asset not in self._ever_bad:
            self._say(f"the agent sees {self.name(asset)} UP")
        elif to == "UP":
            self._say(f"{asset} is UP again (good polls in a row): the agent resolves its incident")
        elif to == "DOWN":
            self._ever_bad.add(asset)
            self._say(f"{self.name(asset)} stopped answering properly: the agent marks it DOWN after "
                      f"{self._fails} failed polls ({c['reason']})")
        elif to == "DEGRADED":
            self._ever_bad.add(asset)
            self._say(f"{self.name(asset)} answers, but badly: DEGRADED ({c['reason']})")
        elif before != "UNKNOWN":
            self._say(f"{asset}: {before} -> {to} ({c['reason']})")

    def _audit(self, action: str, obj: str, d: Mapping[str, Any]) -> None:
        parts = obj.split("/")
        contract = parts[1] if len(parts) > 2 else ""
        if action == "incident.routed":
            decision = d.get("decision")
            where = {"vendor": "a vendor ticket", "maintenance": "NO ticket", "plant_it": "plant IT"}.get(
                str(decision), str(decision)
            )
            self._say(f"collector routes the {d.get('asset')} incident under {parts[-1]}: {where} ({d.get('reason')})")
        elif action == "ticket.raised":
            self._say(f"ticket {d.get('vendor_id')} ({d.get('severity')}) raised at {d.get('vendor')} via webhook, "
                      f"under contract {contract}: the response clock runs")
        elif action == "ticket.escalated":
            notify = ", ".join(d.get("contacts") or d.get("notify") or [])
            self._say(f"ESCALATION level {d.get('level')} on {contract}: {d.get('after')} passed without an "
                      f"acknowledgement -> notifying {notify} (the demo contract uses seconds where a real "
                      "one says hours)")
        elif action == "ticket.restored_measured":
            self._say(f"collector: the agent measured the service restored ({contract}): the resolution clock stops")
        elif action == "ticket.closed":
            self._say(f"ticket under {contract} closed: {d.get('note') or 'verified restored'}")
        elif action == "maintenance.recorded":
            self._say(f"maintenance window {parts[-1]} recorded")


def _details(raw: Any) -> dict[str, Any]:
    try:
        found = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}
