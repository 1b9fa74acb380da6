"""Recurrence: an incident is recurring when the previous incident on the same asset with the same
reason (the latest one opened before it) was restored at most 30 days (30 × 24 h, elapsed time)
before this one was opened. A previous incident not yet restored makes no recurrence (it is the same
outage, not a new one). Restorations later than `as_of` are not known yet.
"""

from __future__ import annotations

from collections.abc import Iterable

from linewarden.sla.models import Incident

WINDOW_MS = 30 * 24 * 3600 * 1000


def recurring_ids(incidents: Iterable[Incident], as_of_ms: int) -> set[str]:
    last: dict[tuple[str, str], Incident] = {}
    out: set[str] = set()
    for inc in sorted(incidents, key=lambda i: (i.opened_at_ms, i.id)):
        prev = last.get((inc.asset, inc.reason))
        restored = prev.restored_at_ms if prev is not None else None
        if restored is not None and restored <= as_of_ms and 0 <= inc.opened_at_ms - restored <= WINDOW_MS:
            out.add(inc.id)
        last[(inc.asset, inc.reason)] = inc
    return out
