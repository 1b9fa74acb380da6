"""Recurrence: an incident is recurring when the previous incident on the same asset with the same cause
(the latest one opened before it) was restored at most 30 days (30 × 24 h, elapsed time) before this one
was opened. The cause is the incident's stable cause code (`http.slow`, `condition.heartbeat.stale`), so
repeats of one fault count whatever the measurements in their reason text ("slow answer: 912 ms" and
"slow answer: 430 ms" are one fault); an incident without a code (sent or imported before cause codes)
is compared by its reason text. A previous incident not yet restored makes no recurrence (it is the same
outage, not a new one). Restorations later than `as_of` are not known yet. A planned stop (an incident opened
inside an approved window and never raised) is no fault: it neither recurs nor makes a later incident recur.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet

from linewarden.sla.models import Incident

WINDOW_MS = 30 * 24 * 3600 * 1000


def fault_key(incident: Incident) -> tuple[str, str]:
    """What makes two incidents of one asset the same fault: its cause code, else its reason text."""
    return ("cause", incident.cause) if incident.cause else ("reason", incident.reason)


def recurring_ids(incidents: Iterable[Incident], as_of_ms: int, planned: AbstractSet[str] = frozenset()) -> set[str]:
    last: dict[tuple[str, tuple[str, str]], Incident] = {}
    out: set[str] = set()
    for inc in sorted(incidents, key=lambda i: (i.opened_at_ms, i.id)):
        if inc.id in planned:
            continue
        key = (inc.asset, fault_key(inc))
        prev = last.get(key)
        restored = prev.restored_at_ms if prev is not None else None
        if restored is not None and restored <= as_of_ms and 0 <= inc.opened_at_ms - restored <= WINDOW_MS:
            out.add(inc.id)
        last[key] = inc
    return out
