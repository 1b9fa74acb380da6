"""Judging vendor remote sessions (linewarden/sla/remote_sessions.py): tables, then properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linewarden.sla.patch_policy import ApprovedWindow
from linewarden.sla.remote_sessions import JudgedSession, OpenTicket, Session, judge

H = 3_600_000


def session(start: int, end: int | None, asset: str = "plc") -> Session:
    return Session("s1", "jump1", "vendor.joe", "203.0.113.7", asset, start, end)


TICKET = OpenTicket("inc-1", "plc", 10 * H, 20 * H)
WINDOW = ApprovedWindow("cw-1", "CAB-1", 30 * H, 32 * H, frozenset({"plc"}), 0, "it")


def one(s: Session, tickets: list[OpenTicket] | None = None, as_of: int = 100 * H) -> JudgedSession:
    [j] = judge([s], [TICKET] if tickets is None else tickets, [WINDOW], 0, 100 * H, as_of)
    return j


@pytest.mark.parametrize(
    ("case", "s", "incident", "uncovered"),
    [
        ("inside the open ticket", session(11 * H, 12 * H), "inc-1", 0),
        ("runs past the ticket's resolution", session(19 * H, 21 * H), "inc-1", H),
        ("starts before the ticket opens", session(9 * H, 11 * H), "inc-1", H),
        ("inside an approved window, no ticket", session(30 * H, 31 * H), None, 0),
        ("no ticket, no window", session(40 * H, 41 * H), None, H),
        ("ticket of another asset", session(11 * H, 12 * H, asset="mes"), None, H),
        ("still open: until as of", session(95 * H, None), None, 5 * H),
        ("ended as it began", session(50 * H, 50 * H), None, 1),
    ],
)
def test_sessions(case: str, s: Session, incident: str | None, uncovered: int) -> None:
    j = one(s)
    assert (j.incident, j.uncovered_ms, j.flagged) == (incident, uncovered, uncovered > 0), case


def test_a_window_counts_only_from_its_approval() -> None:
    late = ApprovedWindow("cw-2", "CAB-2", 30 * H, 32 * H, frozenset({"plc"}), 31 * H, "it")
    [j] = judge([session(30 * H, 32 * H)], [], [late], 0, 100 * H, 100 * H)
    assert (j.uncovered_ms, j.windows) == (H, ("cw-2",))


def test_attached_to_the_ticket_open_at_its_start() -> None:
    later = OpenTicket("inc-2", "plc", 15 * H, None)
    assert one(session(12 * H, 16 * H), [TICKET, later]).incident == "inc-1"
    assert one(session(16 * H, 17 * H), [TICKET, later]).incident == "inc-2"
    assert one(session(9 * H, 16 * H), [later]).incident == "inc-2"  # opened during it


def test_only_what_is_known_as_of() -> None:
    assert judge([session(50 * H, 51 * H)], [], [], 0, 100 * H, 49 * H) == []
    j = one(session(50 * H, 60 * H), as_of=55 * H)
    assert (j.end_ms, j.uncovered_ms) == (None, 5 * H)


span = st.tuples(st.integers(0, 50 * H), st.integers(0, 10 * H))


@given(st.lists(span, min_size=1, max_size=4), span)
def test_properties(ticket_spans: list[tuple[int, int]], s: tuple[int, int]) -> None:
    tickets = [OpenTicket(f"i{n}", "plc", a, a + d) for n, (a, d) in enumerate(ticket_spans)]
    sess = session(s[0], s[0] + s[1])
    [j] = judge([sess], tickets, [], 0, 100 * H, 100 * H)
    assert 0 <= j.uncovered_ms <= max(1, s[1])
    # more cover never flags more
    [wide] = judge([sess], [*tickets, OpenTicket("all", "plc", 0, 100 * H)], [], 0, 100 * H, 100 * H)
    assert wide.uncovered_ms == 0 and wide.incident is not None
    assert (j.incident is None) <= j.flagged
