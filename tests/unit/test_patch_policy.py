"""The patch policy's verdicts (linewarden/sla/patch_policy.py): tables of cases, then properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linewarden.sla.patch_policy import ApprovedWindow, VersionSeen, evaluate, runs

H = 3_600_000
DAY = 24 * H
STAGING = {"plc": "plc-test"}


def seen(asset: str, version: str, at: int, what: str = "firmware") -> VersionSeen:
    return VersionSeen(asset, what, version, at)


def window(start: int, end: int, approved_at: int = 0, assets: frozenset[str] = frozenset({"plc"})) -> ApprovedWindow:
    return ApprovedWindow("cw-1", "CAB-7", start, end, assets, approved_at, "it")


def judge(obs: list[VersionSeen], windows: list[ApprovedWindow], min_ms: int = 2 * DAY, as_of: int = 100 * DAY):
    return evaluate(obs, STAGING, min_ms, windows, 0, 60 * DAY, as_of)


BASE = [seen("plc", "1.0", 0), seen("plc-test", "1.0", 0)]


@pytest.mark.parametrize(
    ("case", "obs", "windows", "findings", "rollback"),
    [
        ("soaked and approved", [*BASE, seen("plc-test", "1.1", 1 * DAY), seen("plc", "1.1", 4 * DAY)],
         [window(4 * DAY - H, 4 * DAY + H)], (), False),
        ("never on staging", [*BASE, seen("plc", "1.1", 4 * DAY)], [window(4 * DAY - H, 4 * DAY + H)],
         ("untested_patch",), False),
        ("staged too briefly", [*BASE, seen("plc-test", "1.1", 3 * DAY), seen("plc", "1.1", 4 * DAY)],
         [window(4 * DAY - H, 4 * DAY + H)], ("untested_patch",), False),
        ("staged, then staging moved on: the run still counts",
         [*BASE, seen("plc-test", "1.1", 1 * DAY), seen("plc-test", "1.2", 3 * DAY + H), seen("plc", "1.1", 9 * DAY)],
         [window(9 * DAY - H, 9 * DAY + H)], (), False),
        ("staged after production: does not count",
         [*BASE, seen("plc", "1.1", 4 * DAY), seen("plc-test", "1.1", 5 * DAY)], [window(4 * DAY - H, 4 * DAY + H)],
         ("untested_patch",), False),
        ("outside the window", [*BASE, seen("plc-test", "1.1", 1 * DAY), seen("plc", "1.1", 4 * DAY)],
         [window(5 * DAY, 6 * DAY)], ("unapproved_change",), False),
        ("window approved after the change", [*BASE, seen("plc-test", "1.1", 1 * DAY), seen("plc", "1.1", 4 * DAY)],
         [window(4 * DAY - H, 4 * DAY + H, approved_at=4 * DAY + 1)], ("unapproved_change",), False),
        ("window for another asset", [*BASE, seen("plc-test", "1.1", 1 * DAY), seen("plc", "1.1", 4 * DAY)],
         [window(0, 9 * DAY, assets=frozenset({"other"}))], ("unapproved_change",), False),
        ("both", [*BASE, seen("plc", "1.1", 4 * DAY)], [], ("untested_patch", "unapproved_change"), False),
        ("end of the window is outside", [*BASE, seen("plc-test", "1.1", 0), seen("plc", "1.1", 4 * DAY)],
         [window(3 * DAY, 4 * DAY)], ("unapproved_change",), False),
    ],
)
def test_one_change(case: str, obs: list[VersionSeen], windows: list[ApprovedWindow], findings: tuple[str, ...],
                    rollback: bool) -> None:  # fmt: skip
    [change] = judge(obs, windows)
    assert (change.findings, change.rollback, change.old, change.new) == (findings, rollback, "1.0", "1.1"), case


def test_the_evidence_names_versions_times_and_window() -> None:
    obs = [*BASE, seen("plc-test", "1.1", 1 * DAY), seen("plc", "1.1", 2 * DAY)]
    [c] = judge(obs, [window(2 * DAY - H, 2 * DAY + H)])
    assert (c.asset, c.staging_asset, c.staging_since_ms, c.staged_ms, c.required_ms) == ("plc", "plc-test", DAY,
                                                                                          DAY, 2 * DAY)  # fmt: skip
    assert (c.at_ms, c.window, c.change_ref, c.findings) == (2 * DAY, "cw-1", "CAB-7", ("untested_patch",))


def test_a_return_to_the_previous_version_is_a_rollback_and_needs_no_staging() -> None:
    obs = [*BASE, seen("plc-test", "1.1", 0), seen("plc", "1.1", 3 * DAY), seen("plc", "1.0", 3 * DAY + H)]
    first, back = judge(obs, [window(3 * DAY - H, 3 * DAY + 2 * H)])
    assert (first.rollback, back.rollback, back.old, back.new, back.findings) == (False, True, "1.1", "1.0", ())
    [outside] = judge(obs, [window(3 * DAY - H, 3 * DAY + 1)])[1:]
    assert outside.findings == ("unapproved_change",)


def test_the_baseline_repeats_and_other_assets_are_not_judged() -> None:
    obs = [*BASE, seen("plc", "1.0", DAY), seen("plc", "1.0", 2 * DAY), seen("plc-test", "9", DAY),
                  seen("line", "1", 0), seen("line", "2", DAY)]  # fmt: skip
    assert judge(obs, []) == []


def test_only_changes_of_the_period_known_as_of_it() -> None:
    obs = [*BASE, seen("plc", "1.1", 61 * DAY), seen("plc", "1.2", 10 * DAY)]
    assert [c.new for c in judge(obs, [])] == ["1.2"]
    assert judge(obs, [], as_of=10 * DAY - 1) == []


def test_kinds_of_version_are_judged_apart() -> None:
    obs = [*BASE, seen("plc-test", "7", 0, what="build"), seen("plc", "7", 4 * DAY, what="build"),
                  seen("plc", "6", 0, what="build")]  # fmt: skip
    [c] = judge(obs, [window(0, 9 * DAY)])
    assert (c.what, c.findings) == ("build", ())


versions = st.sampled_from(["1", "2", "3"])
observation = st.builds(seen, st.sampled_from(["plc", "plc-test"]), versions, st.integers(0, 30 * DAY))


@given(st.lists(observation, max_size=25), st.integers(0, 5 * DAY))
def test_properties(obs: list[VersionSeen], min_ms: int) -> None:
    approved = window(0, 60 * DAY)
    judged = evaluate(obs, STAGING, min_ms, [approved], 0, 60 * DAY, 100 * DAY)
    # every change is one run boundary of the production asset, and nothing else
    production = runs(obs).get(("plc", "firmware"), [])
    assert len(judged) == max(0, len(production) - 1)
    for c in judged:
        assert c.old != c.new and "unapproved_change" not in c.findings
        assert c.staged_ms <= c.at_ms
        assert ("untested_patch" in c.findings) == (not c.rollback and c.staged_ms < min_ms)
    # the order of the observations does not matter
    assert evaluate(list(reversed(obs)), STAGING, min_ms, [approved], 0, 60 * DAY, 100 * DAY) == judged
    # no window approves nothing
    assert all("unapproved_change" in c.findings for c in evaluate(obs, STAGING, min_ms, [], 0, 60 * DAY, 100 * DAY))
