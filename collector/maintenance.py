"""Maintenance and change windows: record them with who announced them and when, and publish each site's
windows (in force or upcoming) on its retained maintenance topic, so agents and people can see them.

Rules (docs/maintenance-and-tickets.md says them for users):
- The announcement time is the moment the collector receives the announcement (CLI, API). An earlier time
  (back-dating) is taken only from an admin who states a reason, or from a history import; a later one never.
  A back-dated window keeps its reason and is flagged "back-dated" in reports and on the wire.
- A window covers named assets and services, and may select the whole site, lines (a line is an agent: the
  assets that agent watches) and asset classes (criticality) from the site's registry of assets.
- A window that covers nothing (no asset it names or selects is known to the registry or the contracts) is
  refused with a message naming what matched nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from collector.audit import append_entry
from collector.store import Store
from collector.store.base import Sql
from collector.store.rows import MaintenanceWindowRow, PeriodData
from linewarden.book import ContractBook
from linewarden.config.base import BrokerConfig
from linewarden.domain import Criticality
from linewarden.errors import BackdateForbidden, LinewardenError, MaintenanceRefused
from linewarden.mqtt import MqttClient
from linewarden.wire import (
    MaintenanceAnnouncement,
    MaintenanceWindowWire,
    agent_maintenance_topic,
    encode,
    maintenance_topic,
)

IMPORTED = "imported history"
FAR_FUTURE_MS = 2**62


def to_wire(row: MaintenanceWindowRow) -> MaintenanceWindowWire:
    return MaintenanceWindowWire(
        id=row.id,
        kind="change" if row.kind == "change" else "maintenance",
        start=row.start_at,
        end=row.end_at,
        assets=list(row.assets),
        services=list(row.services),
        announced_at=row.announced_at,
        announced_by=row.announced_by,
        reason=row.reason,
        whole_site=row.whole_site,
        lines=list(row.lines),
        asset_classes=[Criticality(c) for c in row.asset_classes],
        back_dated=row.back_dated,
    )


def stamp(announced_at: int | None, received_at: int, *, admin: bool, reason: str) -> tuple[int, str]:
    """(announcement time to record, back-dating reason or ''): the time of receipt unless an admin who
    states a reason dates it earlier. Raises MaintenanceRefused (BackdateForbidden for a non-admin)."""
    if announced_at is None or announced_at == received_at:
        return received_at, ""
    if announced_at > received_at:
        raise MaintenanceRefused(
            "an announcement cannot be dated after the collector received it: leave the time out, it is stamped"
        )
    if not admin:
        raise BackdateForbidden(
            "only an admin may record an announcement dated before now (back-dating), and only with a reason"
            " (CLI: --admin --backdate-reason TEXT; API: an admin token and backdate_reason)"
        )
    if not reason.strip():
        raise MaintenanceRefused("a back-dated announcement needs a stated reason")
    return announced_at, reason.strip()


@dataclass(frozen=True)
class SiteAsset:
    """An asset as the registry knows it: at which site, watched by which agent, of which class if known."""

    site: str
    agent: str
    asset: str
    criticality: str | None


class Scoped(Protocol):
    """What a window names and selects (a stored row or a wire window)."""

    @property
    def assets(self) -> Sequence[str]: ...
    @property
    def services(self) -> Sequence[str]: ...
    @property
    def whole_site(self) -> bool: ...
    @property
    def lines(self) -> Sequence[str]: ...
    @property
    def asset_classes(self) -> Sequence[str]: ...


def site_assets(sql: Sql, site: str) -> list[SiteAsset]:
    """Every asset the store knows at `site`: from agents' births (with class) and from their own records."""
    rows = sql.query(
        "SELECT site, agent, asset, criticality FROM targets WHERE site = ? UNION SELECT DISTINCT site, agent,"
        " asset, NULL FROM state_changes WHERE site = ? UNION SELECT DISTINCT site, agent, asset, criticality"
        " FROM incidents WHERE site = ? AND asset IS NOT NULL",
        (site, site, site),
    )
    return [SiteAsset(r["site"], r["agent"], r["asset"], r["criticality"]) for r in rows]


def period_assets(data: PeriodData) -> list[SiteAsset]:
    """The same as `site_assets`, from what a report reads of the store (each asset once per site, agent and
    class: a period holds thousands of state changes of the same few assets)."""
    found: dict[tuple[str, str, str, str | None], None] = {}
    found.update(dict.fromkeys((t.site, t.agent, t.asset, t.criticality) for t in data.targets))
    found.update(dict.fromkeys((c.site, c.agent, c.asset, None) for c in data.state_changes))
    found.update(
        dict.fromkeys((i.site, i.agent, i.asset, i.criticality) for i in data.incidents if i.asset is not None)
    )
    return [SiteAsset(*key) for key in found]


def selected_assets(w: Scoped, site: str, known: Iterable[SiteAsset]) -> tuple[str, ...]:
    """The assets a window covers by name or selector (services stay services: a contract says what they hold)."""
    out = set(w.assets)
    if w.whole_site or w.lines or w.asset_classes:  # without a selector, the names are all there is
        for a in known:
            if a.site == site and (w.whole_site or a.agent in w.lines or a.criticality in w.asset_classes):
                out.add(a.asset)
    return tuple(sorted(out))


def check_covers(w: Scoped, site: str, known: Sequence[SiteAsset], book: ContractBook | None) -> list[str]:
    """Refuse (MaintenanceRefused) a window that covers nothing; return what it names that matched nothing.
    Without a contract book (`None`) named services cannot be checked and are taken at their word."""
    if not (w.assets or w.services or w.whole_site or w.lines or w.asset_classes):
        raise MaintenanceRefused("name at least one asset, service, line or asset class, or the whole site")
    here = [a for a in known if a.site == site]
    contracts = list(book.contracts.values()) if book is not None else []
    services = {s.id: s for c in contracts for s in c.services}
    contract_assets = {a for c in contracts for a in c.scope.assets} | {
        a for s in services.values() for a in s.components
    }
    covered: set[str] = set()
    unmatched: list[str] = []

    def pick(label: str, found: Iterable[str]) -> None:
        got = set(found)
        covered.update(got)
        if not got:
            unmatched.append(label)

    for asset in w.assets:
        known_asset = asset in contract_assets or any(a.asset == asset for a in here)
        pick(f"asset {asset} (not in {site}'s registry nor in any contract)", [asset] if known_asset else [])
    for sid in w.services:
        found = [sid] if book is None else services[sid].components if sid in services else []
        pick(f"service {sid} (in no contract)", found)
    for line in w.lines:
        pick(f"line {line} (no agent of that id at {site})", [a.asset for a in here if a.agent == line])
    for cls in w.asset_classes:
        pick(f"asset class {cls} (no such asset at {site})", [a.asset for a in here if a.criticality == cls])
    if w.whole_site:
        pick(f"site {site} (no asset known there)", [a.asset for a in here])
    if not covered:
        raise MaintenanceRefused(f"the window covers nothing: {'; '.join(unmatched)}")
    return unmatched


def record_window(
    store: Store, book: ContractBook | None, site: str, window: MaintenanceWindowWire, received_at: int,
    backdate_reason: str, actor: str, origin: str,
) -> list[str]:
    """Check that the window covers something and record it with its audit entries (one more when it is
    back-dated); return what it names that matched nothing. Raises MaintenanceRefused."""
    with store.transaction() as tx:
        unmatched = check_covers(window, site, site_assets(tx.sql, site), book)
        if not tx.add_maintenance_window(site, window, None, received_at, backdate_reason):
            raise MaintenanceRefused(f"window {window.id} exists already")
        details = {"site": site, **msgspec.to_builtins(window), "received_at": received_at}
        append_entry(tx.sql, actor, origin, "maintenance.recorded", f"window/{window.id}", details, received_at)
        if backdate_reason:
            append_entry(tx.sql, actor, origin, "maintenance.backdated", f"window/{window.id}",
                         {"announced_at": window.announced_at, "received_at": received_at,
                          "reason": backdate_reason}, received_at)  # fmt: skip
    return unmatched


def current_windows(store: Store, site: str, now_ms: int) -> list[MaintenanceWindowRow]:
    """Windows of `site` not cancelled and not yet over."""
    return [
        w
        for w in store.maintenance_windows(now_ms, FAR_FUTURE_MS)
        if w.site == site and w.cancelled_at is None
    ]


def announcement(store: Store, site: str, now_ms: int) -> MaintenanceAnnouncement:
    return MaintenanceAnnouncement(
        site=site, ts=now_ms, windows=[to_wire(w) for w in current_windows(store, site, now_ms)]
    )


def announcement_topics(store: Store, site: str) -> list[str]:
    """Where a site's windows are published (retained): the site's topic, and the topic of each agent the
    collector knows at the site, since the shipped broker ACL lets an agent read its own topics only."""
    agents = [a.agent for a in store.agents() if a.site == site]
    return [maintenance_topic(site), *(agent_maintenance_topic(site, agent) for agent in agents)]


async def publish_announcement(
    broker: BrokerConfig, ann: MaintenanceAnnouncement, topics: Sequence[str], timeout_s: float = 5.0
) -> None:
    """Publish one site's windows on `topics`, retained. Raises LinewardenError when the broker does not take
    them in time."""
    client = MqttClient(broker, client_id=f"lw-maintenance-{ann.site}")
    connected = asyncio.Event()
    client.on_connect = connected.set
    await client.start()
    try:
        async with asyncio.timeout(timeout_s):
            await connected.wait()
            payload = encode(ann)
            await asyncio.gather(*(client.publish(topic, payload, qos=1, retain=True) for topic in topics))
    except TimeoutError:
        raise LinewardenError(
            f"broker {broker.shown()} did not take the maintenance announcement within {timeout_s:g} s"
        ) from None
    finally:
        await client.stop()
