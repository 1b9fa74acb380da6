"""RFC 5424 syslog messages carrying remote-session records: `parse(datagram)`, pure.

A session record is a message whose MSGID is `session-start` or `session-end` with a structured-data element
`session@32473` holding `id` (the gateway's session id), `user`, `src` (where the user connected from) and
`asset` (where to). The header's TIMESTAMP is when it happened (it must carry a zone) and its HOSTNAME names
the gateway. A well-formed message of another MSGID is not a session record (`None`): jump hosts log much
else. Anything that is not RFC 5424, or a session record missing what it needs, raises SyslogError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from linewarden.errors import LinewardenError
from linewarden.timeutil import dt_to_ms

SD_ID = "session@32473"
MSGIDS = {"session-start": "start", "session-end": "end"}
_HEADER = re.compile(
    r"<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S{1,255}) (?P<app>\S{1,48}) (?P<proc>\S{1,128}) (?P<msgid>\S{1,32}) "
)
_NAME = re.compile(r"[^= \]\"]{1,32}")
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_MAX_FIELD = 200


class SyslogError(LinewardenError):
    """A message that is not RFC 5424, or a session record that lacks what it needs."""


@dataclass(frozen=True)
class SessionEvent:
    gateway: str
    session: str
    kind: str  # "start" or "end"
    at_ms: int
    user: str | None
    source: str | None
    asset: str | None


def _structured_data(text: str) -> dict[str, dict[str, str]]:
    """The SD-ELEMENTs at the start of `text` (after the header): {sd-id: {name: value}}."""
    if text.startswith("-"):
        return {}
    out: dict[str, dict[str, str]] = {}
    i = 0
    while i < len(text) and text[i] == "[":
        m = _NAME.match(text, i + 1)
        if m is None:
            raise SyslogError("bad SD-ID")
        params: dict[str, str] = {}
        i = m.end()
        while i < len(text) and text[i] == " ":
            n = _NAME.match(text, i + 1)
            if n is None or text[n.end() : n.end() + 2] != '="':
                raise SyslogError("bad SD-PARAM")
            j, value = n.end() + 2, []
            while j < len(text) and text[j] != '"':
                if text[j] == "\\" and j + 1 < len(text) and text[j + 1] in '"\\]':
                    j += 1
                value.append(text[j])
                j += 1
            if j >= len(text):
                raise SyslogError("unterminated SD-PARAM value")
            params[n.group()] = "".join(value)
            i = j + 1
        if i >= len(text) or text[i] != "]":
            raise SyslogError("unterminated SD-ELEMENT")
        out.setdefault(m.group(), params)
        i += 1
    if not out:
        raise SyslogError("no STRUCTURED-DATA (neither '-' nor an element)")
    return out


def parse_time(text: str) -> int:
    """RFC 3339 with a zone, as ms since the epoch. Raises SyslogError."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SyslogError(f"bad TIMESTAMP {text[:40]!r}") from None
    if dt.tzinfo is None:
        raise SyslogError(f"TIMESTAMP {text[:40]!r} has no zone")
    if not 1970 <= dt.year <= 9999:
        raise SyslogError(f"TIMESTAMP {text[:40]!r} is out of range")
    return dt_to_ms(dt)


def field(value: str | None, name: str) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > _MAX_FIELD or not value.isprintable():
        raise SyslogError(f"{name} is longer than {_MAX_FIELD} characters or not printable")
    return value


def session_event(
    gateway: str, session: str | None, kind: str, at_ms: int, user: str | None, source: str | None,
    asset: str | None,
) -> SessionEvent:
    """A checked session event (from syslog or a JSON line). Raises SyslogError."""
    if not session:
        raise SyslogError("the session record has no session id")
    if kind == "start" and not (user and asset):
        raise SyslogError("a session start needs user and asset")
    if asset is not None and not _ID.match(asset):
        raise SyslogError(f"asset {asset[:70]!r} is not an asset id")
    return SessionEvent(
        field(gateway, "gateway") or "-", field(session, "id") or "", kind, at_ms, field(user, "user"),
        field(source, "src"), asset,
    )


def parse(data: bytes) -> SessionEvent | None:
    """The session event one message carries; None for a well-formed message that is not one."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SyslogError("not UTF-8") from None
    text = text.rstrip("\r\n")
    m = _HEADER.match(text)
    if m is None:
        raise SyslogError("not an RFC 5424 header (<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID)")
    if int(m["pri"]) > 191:
        raise SyslogError(f"PRI {m['pri']} is out of range")
    sd = _structured_data(text[m.end() :])
    kind = MSGIDS.get(m["msgid"])
    if kind is None:
        return None
    if m["ts"] == "-":
        raise SyslogError("a session record needs a TIMESTAMP")
    params = sd.get(SD_ID)
    if params is None:
        raise SyslogError(f"a {m['msgid']} message without a [{SD_ID} ...] element")
    return session_event(
        m["host"], params.get("id"), kind, parse_time(m["ts"]), params.get("user"), params.get("src"),
        params.get("asset"),
    )
