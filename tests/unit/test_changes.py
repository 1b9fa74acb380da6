"""Change detection: baseline, changed and new keys, partial reads, persistence."""

from __future__ import annotations

import pytest

from linewarden.changes import ChangeDetector
from linewarden.errors import LinewardenError
from linewarden.wire import ChangeDetectedBody


def test_first_observation_is_the_baseline() -> None:
    detector = ChangeDetector()
    assert detector.observe("plc-1", "line3", {"firmware": "V4.5"}, 1000) == []
    assert detector.observe("plc-1", "line3", {"firmware": "V4.5"}, 2000) == []


def test_changed_and_new_keys() -> None:
    detector = ChangeDetector()
    detector.observe("plc-1", "line3", {"firmware": "V4.5", "program_crc": "aa"}, 1000)
    changes = detector.observe("plc-1", "line3", {"firmware": "V4.6", "program_crc": "aa", "serial": "S9"}, 2000)
    assert changes == [
        ChangeDetectedBody(target="plc-1", asset="line3", what="firmware", old="V4.5", new="V4.6", at=2000),
        ChangeDetectedBody(target="plc-1", asset="line3", what="serial", old=None, new="S9", at=2000),
    ]
    assert detector.observe("plc-1", "line3", {"firmware": "V4.6"}, 3000) == []


def test_missing_key_keeps_last_value() -> None:
    detector = ChangeDetector()
    detector.observe("mes", "mes-app", {"version": "2.1", "build": "77"}, 1000)
    assert detector.observe("mes", "mes-app", {"build": "77"}, 2000) == []
    assert detector.observe("mes", "mes-app", {"version": "2.1"}, 3000) == []
    [change] = detector.observe("mes", "mes-app", {"version": "2.2"}, 4000)
    assert (change.old, change.new) == ("2.1", "2.2")


def test_targets_are_independent() -> None:
    detector = ChangeDetector()
    detector.observe("a", "x", {"v": "1"}, 1)
    assert detector.observe("b", "x", {"v": "2"}, 2) == []
    assert [c.target for c in detector.observe("a", "x", {"v": "2"}, 3)] == ["a"]


def test_snapshot_restore() -> None:
    detector = ChangeDetector()
    detector.observe("plc-1", "line3", {"firmware": "V4.5"}, 1000)
    restored = ChangeDetector()
    restored.restore(detector.snapshot())
    [change] = restored.observe("plc-1", "line3", {"firmware": "V5"}, 2000)
    assert change.old == "V4.5"


@pytest.mark.parametrize("bad", [{"plc-1": "V4"}, {"plc-1": {"firmware": 4}}, {"plc-1": None}])
def test_bad_snapshot_is_rejected_without_change(bad: dict[str, object]) -> None:
    detector = ChangeDetector()
    detector.observe("plc-1", "line3", {"firmware": "V4.5"}, 1000)
    with pytest.raises(LinewardenError):
        detector.restore(bad)
    assert detector.snapshot() == {"plc-1": {"firmware": "V4.5"}}
