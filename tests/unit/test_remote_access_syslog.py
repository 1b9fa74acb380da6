"""Parsing remote-session records: RFC 5424 syslog and JSON lines, as hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.remote_access.records import json_events
from collector.remote_access.syslog import SessionEvent, SyslogError, parse

T0 = 1_764_583_200_000  # 2025-12-01T10:00:00Z


def msg(msgid: str = "session-start", sd: str = '[session@32473 id="s1" user="acme.joe" src="203.0.113.7"'
        ' asset="line9-plc"]', ts: str = "2025-12-01T10:00:00Z") -> bytes:  # fmt: skip
    return f"<86>1 {ts} jump1 sshgw 4711 {msgid} {sd} vendor session".encode()


def test_a_session_start() -> None:
    assert parse(msg()) == SessionEvent("jump1", "s1", "start", T0, "acme.joe", "203.0.113.7", "line9-plc")


def test_an_end_needs_only_the_id_and_escapes_are_read() -> None:
    e = parse(msg("session-end", r'[session@32473 id="s1" user="a \"b\" \] c"][other@1 x="y"]',
                  "2025-12-01T11:00:00.250+01:00"))  # fmt: skip
    assert e is not None and (e.kind, e.at_ms, e.user, e.asset) == ("end", T0 + 250, 'a "b" ] c', None)


def test_other_messages_of_the_host_are_not_session_records() -> None:
    assert parse(b"<38>1 2025-12-01T10:00:00Z jump1 sshd 12 - - Accepted publickey for root") is None


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"hello", "RFC 5424 header"),
        (b"<999>1 2025-12-01T10:00:00Z h a p session-start -", "PRI"),
        (msg(ts="2025-12-01T10:00:00"), "no zone"),
        (msg(ts="-"), "needs a TIMESTAMP"),
        (msg(ts="yesterday"), "bad TIMESTAMP"),
        (msg(sd="-"), "without a [session@32473"),
        (msg(sd='[session@32473 user="x" asset="plc"]'), "no session id"),
        (msg(sd='[session@32473 id="s1" asset="plc"]'), "needs user and asset"),
        (msg(sd='[session@32473 id="s1" user="x" asset="../etc"]'), "not an asset id"),
        (msg(sd='[session@32473 id="s1" user="x'), "unterminated"),
        (msg(sd="[session@32473 id=s1]"), "bad SD-PARAM"),
        (msg(sd='[session@32473 id="s1" user="' + "x" * 300 + '" asset="plc"]'), "longer than"),
        (b"\xff\xfe<86>1", "not UTF-8"),
    ],
)
def test_malformed(data: bytes, why: str) -> None:
    with pytest.raises(SyslogError, match=why.replace("[", r"\[")):
        parse(data)


def test_json_lines() -> None:
    line = (b'{"gateway": "vpn1", "id": "t9", "user": "acme.joe", "source": "198.51.100.2",'
            b' "asset": "line9-plc", "start": "2025-12-01T10:00:00Z", "end": 1764586800000}')
    [start, end] = json_events(line)
    assert (start.kind, start.at_ms, end.kind, end.at_ms, end.gateway) == ("start", T0, "end", T0 + 3_600_000, "vpn1")
    for bad, why in [(b"[1]", "JSON object"), (b'{"gateway": "g", "id": "x"}', "neither start"),
                     (b'{"gateway": "g", "id": "x", "end": true}', "must be a time"),
                     (b'{"gateway": "g", "id": "x", "evil": 1, "end": 5}', "unknown keys"),
                     (b'{"gateway": "g", "id": "x", "end": 99999999999999999}', "out of range"),
                     (b"{" * 100_000, "not JSON")]:  # fmt: skip
        with pytest.raises(SyslogError, match=why):
            json_events(bad)


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_syslog_error(data: bytes) -> None:
    try:
        parse(b"<86>1 2025-12-01T10:00:00Z h a p session-start " + data)
        parse(data)
    except SyslogError:
        pass
