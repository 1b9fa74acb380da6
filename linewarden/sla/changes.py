"""Unapproved changes: a change detected on an asset at a moment no approved window covered.

A window approves a change on an asset when it is not cancelled, names the asset or a service the asset
belongs to, contains the moment of the change (start ≤ at < end) and was announced no later than the
change. Both kinds ("maintenance" and "change") approve; the notice lead time matters only for uptime
exclusion, so a short-notice window still approves the change it announced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from linewarden.sla.models import ChangeDetection, MaintenanceWindow


def window_names(window: MaintenanceWindow, asset: str, services_of: Mapping[str, frozenset[str]]) -> bool:
    if asset in window.assets:
        return True
    services = services_of.get(asset)
    return services is not None and not services.isdisjoint(window.services)


def is_approved(
    change: ChangeDetection, windows: Iterable[MaintenanceWindow], services_of: Mapping[str, frozenset[str]]
) -> bool:
    return any(
        not w.cancelled
        and w.start_ms <= change.at_ms < w.end_ms
        and w.announced_at_ms <= change.at_ms
        and window_names(w, change.asset, services_of)
        for w in windows
    )
