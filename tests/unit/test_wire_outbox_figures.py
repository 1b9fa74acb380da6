"""The heartbeat's outbox figures on the wire: bounded like the other wire integers, left out while unset."""

from __future__ import annotations

import pytest

from linewarden.errors import WireError
from linewarden.wire import BIGINT_MAX, MAX_MS, HeartbeatBody, HeartbeatEvent, decode, encode, parse_event


def _heartbeat(**body: object) -> dict[str, object]:
    return {"seq": 1, "ts": 1_000, "type": "heartbeat", "body": {"interval_s": 60, "states": {}, **body}}


@pytest.mark.parametrize(
    "figures",
    [{"outbox_depth": -1}, {"outbox_depth": BIGINT_MAX + 1}, {"outbox_depth": 1.5},
     {"oldest_unacked_at": -1}, {"oldest_unacked_at": MAX_MS + 1}, {"oldest_unacked_at": BIGINT_MAX + 1}],
)  # fmt: skip
def test_out_of_range_figures_are_refused(figures: dict[str, object]) -> None:
    with pytest.raises(WireError):
        parse_event(_heartbeat(**figures))


def test_figures_at_their_bounds_are_kept() -> None:
    event = parse_event(_heartbeat(outbox_depth=BIGINT_MAX, oldest_unacked_at=MAX_MS))
    assert isinstance(event, HeartbeatEvent)
    assert (event.body.outbox_depth, event.body.oldest_unacked_at) == (BIGINT_MAX, MAX_MS)
    assert decode(HeartbeatEvent, encode(event)) == event


def test_unset_figures_are_left_out_and_an_old_agents_heartbeat_validates() -> None:
    old = parse_event(_heartbeat())  # what agents from before these fields send
    assert isinstance(old, HeartbeatEvent) and old.body.outbox_depth is old.body.oldest_unacked_at is None
    assert b"outbox_depth" not in encode(old) and b"oldest_unacked_at" not in encode(old)
    empty = HeartbeatBody(interval_s=60, states={}, outbox_depth=0)  # an empty outbox has no oldest event
    assert encode(empty) == b'{"interval_s":60,"states":{},"outbox_depth":0}'
