"""Unapproved changes: a change detected on an asset at a moment no approved window covered.

A window approves a change on an asset when it is in force (`in_force`), names the asset or a service the
asset belongs to, contains the moment of the change (start ≤ at < end) and was announced no later than
the change. Both kinds ("maintenance" and "change") approve; the notice lead time matters only for uptime
exclusion, so a short-notice window still approves the change it announced.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from linewarden.sla.models import ChangeDetection, MaintenanceWindow


def in_force(window: MaintenanceWindow, as_of_ms: int) -> MaintenanceWindow | None:
    """The window as known at `as_of_ms`: None when announced later, or cancelled before it started. A
    cancellation takes effect when it is made, never back to the window's start: a window cancelled while it
    runs ends at its cancellation, one cancelled after its end stays whole, and a cancellation later than
    `as_of_ms` is not known yet."""
    if window.announced_at_ms > as_of_ms:
        return None
    at = window.cancelled_at_ms
    if not window.cancelled or (at is not None and at > as_of_ms):
        return dataclasses.replace(window, cancelled=False, cancelled_at_ms=None)
    if at is None or at <= window.start_ms:
        return None
    return dataclasses.replace(window, end_ms=min(window.end_ms, at), cancelled=False, cancelled_at_ms=None)


def window_names(window: MaintenanceWindow, asset: str, services_of: Mapping[str, frozenset[str]]) -> bool:
    if asset in window.assets:
        return True
    services = services_of.get(asset)
    return services is not None and not services.isdisjoint(window.services)


def is_approved(
    change: ChangeDetection, windows: Iterable[MaintenanceWindow], services_of: Mapping[str, frozenset[str]]
) -> bool:
    return in_window(change.asset, change.at_ms, windows, services_of)


def in_window(
    asset: str, at_ms: int, windows: Iterable[MaintenanceWindow], services_of: Mapping[str, frozenset[str]]
) -> bool:
    """Whether a window announced by `at_ms` and not cancelled covers `asset` at `at_ms`."""
    return any(
        not w.cancelled
        and w.start_ms <= at_ms < w.end_ms
        and w.announced_at_ms <= at_ms
        and window_names(w, asset, services_of)
        for w in windows
    )
