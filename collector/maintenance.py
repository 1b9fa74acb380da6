"""Maintenance and change windows: record them with who announced them and when, and publish each site's
windows (in force or upcoming) on its retained maintenance topic, so agents and people can see them."""

from __future__ import annotations

import asyncio

from collector.store import Store
from collector.store.rows import MaintenanceWindowRow
from linewarden.config.base import BrokerConfig
from linewarden.errors import LinewardenError
from linewarden.mqtt import MqttClient
from linewarden.wire import MaintenanceAnnouncement, MaintenanceWindowWire, encode, maintenance_topic

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
    )


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


async def publish_announcement(broker: BrokerConfig, ann: MaintenanceAnnouncement, timeout_s: float = 5.0) -> None:
    """Publish one site's windows, retained. Raises LinewardenError when the broker does not take it in time."""
    client = MqttClient(broker, client_id=f"lw-maintenance-{ann.site}")
    connected = asyncio.Event()
    client.on_connect = connected.set
    await client.start()
    try:
        async with asyncio.timeout(timeout_s):
            await connected.wait()
            await client.publish(maintenance_topic(ann.site), encode(ann), qos=1, retain=True)
    except TimeoutError:
        raise LinewardenError(
            f"broker {broker.host}:{broker.port} did not take the maintenance announcement within {timeout_s:g} s"
        ) from None
    finally:
        await client.stop()
