"""Version observations through ingest (as hostile input), and the console's Changes page: plant IT approves a
change window with its change reference, sees untested patches and flagged remote sessions; a vendor may not."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from msgspec.structs import replace

from collector.change_records import approvals, latest_versions
from collector.console.app import create_console
from collector.console.sessions import COOKIE, start_session
from collector.console.users import add_user
from collector.ingest import Ingest
from collector.maintenance import record_window
from collector.remote_access.records import record
from collector.remote_access.syslog import SessionEvent
from collector.store.sqlite import SqliteStore
from linewarden.config.collector import ConsoleConfig, LivenessConfig
from linewarden.domain import Criticality, ProbeKind
from linewarden.wire import (
    MaintenanceWindowWire,
    TargetInfo,
    VersionObservedBody,
    VersionObservedEvent,
    birth_topic,
    encode,
    events_topic,
)
from tests.integration.collector_helpers import T0, batch, birth
from tests.integration.ticketing_helpers import book, contract

SITE, AGENT, PROD, STAGING = "p1", "a1", "line9-plc", "line9-plc-test"
H = 3_600_000
PW = "long enough password"


def _seen(seq: int, target: str, version: str, at: int, asset: str = PROD) -> VersionObservedEvent:
    body = VersionObservedBody(target=target, asset=asset, what="firmware", version=version, at=at)
    return VersionObservedEvent(seq=seq, ts=at, body=body)


async def test_versions_are_ingested_judged_and_approved_in_the_console(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "c.db")
    store.migrate()
    the_book = book(contract("plc-2026", "acme", [PROD, STAGING], None, change_policy={
        "min_staging": "1d", "staging": [{"staging": STAGING, "production": [PROD]}]}))  # fmt: skip
    ingest = Ingest(store, LivenessConfig(missed_heartbeats=3, clock_skew_threshold=timedelta(seconds=30)), T0)
    targets = [TargetInfo(id=t, kind=ProbeKind.MODBUS, asset=a, criticality=Criticality.HIGH)
               for t, a in (("prod-mb", PROD), ("stage-mb", STAGING))]  # fmt: skip
    born = replace(birth(SITE, AGENT), targets=targets)
    ingest.handle(birth_topic(SITE, AGENT), encode(born), T0)
    events = [
        _seen(1, "prod-mb", "1.0", T0), _seen(2, "stage-mb", "1.0", T0, asset=PROD),  # the registry's asset counts
        _seen(3, "stage-mb", "1.1", T0 + H, asset=PROD), _seen(4, "prod-mb", "1.1", T0 + 2 * H),
        _seen(5, "ghost", "6.6.6", T0 + 2 * H),  # not this agent's target: refused, dead-lettered
    ]
    ingest.handle(events_topic(SITE, AGENT), encode(batch(SITE, AGENT, events)), T0 + 3 * H)
    assert [v.version for v in latest_versions(store, STAGING)] == ["1.1"]
    assert [v.version for v in latest_versions(store, PROD)] == ["1.1"]
    assert any("ghost" in d.reason for d in store.dead_letters())

    window = MaintenanceWindowWire(id="cw-1", kind="change", start=T0 + H, end=T0 + 3 * H, assets=[PROD],
                                   announced_at=T0, announced_by="it")  # fmt: skip
    record_window(store, the_book, SITE, window, T0, "", "t", "t")
    with store.transaction() as tx:
        record(tx.sql, SessionEvent("jump1", "s9", "start", T0 + H, "acme.joe", "203.0.113.7", PROD), T0)
    pia = add_user(store, "pia", PW, "plant_it", None, (), T0, "t", "t")
    vic = add_user(store, "vic", PW, "vendor", "acme", (), T0, "t", "t")
    now = T0 + 4 * H
    app = create_console(store, the_book, lambda: now, ConsoleConfig(), evidence_dir=tmp_path / "ev")
    transport = httpx.ASGITransport(app=app)
    sid, session = start_session(store, pia, "password", "127.0.0.1", now, ttl_ms=H)
    vid, _ = start_session(store, vic, "password", "127.0.0.1", now, ttl_ms=H)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://console", cookies={COOKIE: sid}) as c,
        httpx.AsyncClient(transport=transport, base_url="http://console", cookies={COOKIE: vid}) as vendor,
    ):
        page = await c.get("/changes")
        assert page.status_code == 200, page.text
        assert "not approved" in page.text and "unapproved change" in page.text and "untested patch" in page.text
        assert "outside ticket and approved window" in page.text
        refused = await c.post("/changes/cw-1/approve", data={"change_ref": "CAB-9"})
        assert refused.status_code == 403  # no CSRF token
        done = await c.post("/changes/cw-1/approve", data={"change_ref": "CAB-9", "csrf": session.csrf})
        assert done.status_code == 303
        assert approvals(store)["cw-1"].change_ref == "CAB-9"
        page = await c.get("/changes")
        assert "CAB-9 by console:pia" in page.text
        # approved after the change: it does not approve it (an approval is never retroactive)
        assert "unapproved change" in page.text and "untested patch" in page.text
        assert (await vendor.get("/changes")).status_code == 403
    store.close()
