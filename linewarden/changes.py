"""Detecting changes of what a target reports about itself (firmware, program checksum, software version).

The first observation of a target is its baseline and yields nothing. Later, each key whose value differs
from the last known one yields a change; a key seen for the first time after the baseline is a change from
None. A key missing from one observation keeps its last known value, so a partial read raises no change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from linewarden.errors import LinewardenError
from linewarden.wire import ChangeDetectedBody, VersionObservedBody, is_valid_id


class ChangeDetector:
    def __init__(self) -> None:
        self._known: dict[str, dict[str, str]] = {}

    def observe(self, target: str, asset: str, versions: Mapping[str, str], at_ms: int) -> list[ChangeDetectedBody]:
        known = self._known.get(target)
        if known is None:
            self._known[target] = dict(versions)
            return []
        changes = [
            ChangeDetectedBody(target=target, asset=asset, what=what, old=known.get(what), new=new, at=at_ms)
            for what, new in sorted(versions.items())
            if known.get(what) != new
        ]
        known.update(versions)
        return changes

    def snapshot(self) -> dict[str, dict[str, str]]:
        return {target: dict(values) for target, values in self._known.items()}

    def restore(self, data: Mapping[str, Any]) -> None:
        """Load a `snapshot()`. Raises LinewardenError (changing nothing) when it is malformed."""
        if not all(
            isinstance(values, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())
            for values in data.values()
        ):
            raise LinewardenError("bad change detector snapshot: expected {target: {key: value}} of strings")
        self._known = {str(target): dict(values) for target, values in data.items()}


class VersionReporter:
    """What a target reports of its versions, for the patch policy: unlike ChangeDetector, the first
    observation of each key is reported too (the policy needs to know since when a version runs). A key is
    reported again only when its value changes."""

    def __init__(self) -> None:
        self._reported: dict[str, dict[str, str]] = {}

    def observe(
        self, target: str, asset: str, versions: Mapping[str, str], at_ms: int
    ) -> list[VersionObservedBody]:
        known = self._reported.setdefault(target, {})
        out = []
        for what, version in sorted(versions.items()):
            if known.get(what) != version and is_valid_id(what):
                out.append(VersionObservedBody(target=target, asset=asset, what=what, version=version, at=at_ms))
                known[what] = version
        return out

    def snapshot(self) -> dict[str, dict[str, str]]:
        return {target: dict(values) for target, values in self._reported.items()}

    def restore(self, data: Mapping[str, Any]) -> None:
        """Load a `snapshot()`. Raises LinewardenError (changing nothing) when it is malformed."""
        if not all(
            isinstance(values, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())
            for values in data.values()
        ):
            raise LinewardenError("bad version reporter snapshot: expected {target: {key: value}} of strings")
        self._reported = {str(target): dict(values) for target, values in data.items()}
