"""Vendor remote sessions end to end: a local syslog sender (UDP and TCP sockets) -> the collector's listener
-> the store -> the report, which attaches each session to the open ticket and flags the rest; junk is
dead-lettered and the listener goes on."""

from __future__ import annotations

import asyncio
import io
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collector.remote_access.listener import REJECTED
from collector.remote_access.records import import_jsonl, sessions
from collector.reporting import reports, scorecard_row, session_rows
from collector.service import CollectorService
from collector.store.sqlite import SqliteStore
from linewarden.config.collector import ConsoleConfig
from linewarden.config.remote_access import RemoteAccessConfig
from linewarden.wire import birth_topic, encode, events_topic
from tests.integration.collector_helpers import T0, batch, birth, incident_opened
from tests.integration.ticketing_helpers import book, collector_config, contract
from tests.waiting import async_wait_until

pytestmark = pytest.mark.broker

SITE, AGENT, ASSET = "plant-ra", "ra-agent", "line3-plc"
MIN = 60_000


def _record(msgid: str, session: str, at: int, asset: str = ASSET) -> bytes:
    ts = datetime.fromtimestamp(at / 1000, UTC).isoformat().replace("+00:00", "Z")
    sd = f'[session@32473 id="{session}" user="acme.joe" src="203.0.113.7" asset="{asset}"]'
    return f"<86>1 {ts} jump1 sshgw 4711 {msgid} {sd} vendor session".encode()


def _counter(store: SqliteStore, name: str) -> int:
    return next((int(r["value"]) for r in store.table_rows("counters") if r["name"] == name), 0)


async def test_sessions_from_syslog_are_attached_flagged_and_junk_is_dead_lettered(mosquitto, tmp_path: Path) -> None:
    the_book = book(contract("plc-2026", "acme", [ASSET], None))
    store = SqliteStore(tmp_path / "collector.db")
    store.migrate()
    config = collector_config(mosquitto.host, mosquitto.port, tmp_path / "c", "c-ra").model_copy(update={
        "console": ConsoleConfig(enabled=False),
        "remote_access": RemoteAccessConfig(syslog_udp="127.0.0.1:0", syslog_tcp="127.0.0.1:0",
                                            max_message_bytes=600),
    })  # fmt: skip
    svc = CollectorService(config, store, book=the_book)
    svc.ingest.handle(birth_topic(SITE, AGENT), encode(birth(SITE, AGENT)), T0)
    svc.ingest.handle(events_topic(SITE, AGENT), encode(batch(SITE, AGENT, [incident_opened(1, T0)])), T0)
    await svc.start()
    try:
        listener = svc.remote_access
        assert listener is not None and listener.udp_port and listener.tcp_port
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for datagram in (_record("session-start", "s1", T0 + 10 * MIN), b"\x00junk", _record("session-end", "s1",
                         T0 + 40 * MIN)):  # fmt: skip
            udp.sendto(datagram, ("127.0.0.1", listener.udp_port))
        udp.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.tcp_port)
        for frame in (_record("session-start", "s2", T0 - 120 * MIN), _record("session-end", "s2", T0 - 60 * MIN)):
            writer.write(b"%d %s" % (len(frame), frame))  # octet counting
        writer.write(_record("session-start", "s3", T0, asset="other-plc") + b"\n")  # LF framing
        writer.write(b"<13>1 not a header\n")
        writer.write(b"9999 " + b"x" * 700)  # longer than allowed: dead-lettered, the connection ends
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 20) == b""
        writer.close()
        await async_wait_until(lambda: len(sessions(store, 0, 2**62)) == 3 and _counter(store, REJECTED) == 3, 20,
                               what="three sessions and three rejected messages")  # fmt: skip
        reasons = [d.reason for d in store.dead_letters() if d.topic == "remote-access/syslog"]
        assert len(reasons) == 3 and any("over 600 bytes" in r for r in reasons), reasons
    finally:
        await svc.stop()

    lines = (b'{"gateway": "vpn1", "id": "v1", "user": "acme.ann", "source": "198.51.100.2", "asset": "line3-plc",'
             b' "start": %d, "end": %d}\n{"gateway": "vpn1"\n' % (T0 + 100 * MIN, T0 + 130 * MIN))  # fmt: skip
    done = import_jsonl(store, io.BytesIO(lines), "vpn.jsonl", 4096, T0)
    assert (done.sessions, done.skipped) == (1, 1)

    [report] = reports(store, the_book, "2026-05", now_ms=T0 + 3 * 24 * 60 * MIN)
    store.close()
    judged = {(s.gateway, s.id): s for s in report.remote_sessions}
    assert set(judged) == {("jump1", "s1"), ("jump1", "s2"), ("vpn1", "v1")}  # s3: not this contract's asset
    s1, s2, v1 = judged["jump1", "s1"], judged["jump1", "s2"], judged["vpn1", "v1"]
    assert (s1.incident, s1.flagged, s1.user, s1.source) == ("inc-1", False, "acme.joe", "203.0.113.7")
    assert (s2.incident, s2.flagged, s2.uncovered_ms) == (None, True, 60 * MIN)
    assert (v1.incident, v1.flagged) == ("inc-1", False)
    assert scorecard_row(report)["flagged_remote_sessions"] == 1
    flags = {r["session"]: r["flag"] for r in session_rows(report, str)}
    assert flags == {"s1": "", "s2": "outside ticket and approved window", "v1": ""}
