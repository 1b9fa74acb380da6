"""Certificate expiry as the collector sees it: its agents' (from their latest heartbeat) and its own."""

from __future__ import annotations

from collector.store import Store
from linewarden.certs import DAY_MS, CertInfo, Role, expiring
from linewarden.config.collector import CollectorConfig
from linewarden.errors import BrokerError
from linewarden.mqtt import local_certificates
from linewarden.wire import CertExpiry, HeartbeatBody, decode


def agent_expiring(store: Store, site: str, agent: str, epoch: str) -> list[CertExpiry]:
    """What the agent's latest heartbeat reported as expiring soon (nothing: all fine, or an older agent)."""
    with store.reader() as sql:
        rows = sql.query(
            "SELECT body FROM events WHERE site = ? AND agent = ? AND epoch = ? AND type = 'heartbeat'"
            " ORDER BY seq DESC LIMIT 1",
            (site, agent, epoch),
        )
    if not rows:
        return []
    return decode(HeartbeatBody, rows[0]["body"].encode()).certificates or []


def summary(certs: list[CertExpiry], now_ms: int) -> str | None:
    """`own 'plant1/a1' -3d, peer 'broker' 12d` (whole days left; negative: expired), or None."""
    if not certs:
        return None
    return ", ".join(f"{c.role} {c.subject!r} {int((c.not_after - now_ms) / DAY_MS)}d" for c in certs)


def own_expiring(config: CollectorConfig, now_ms: int) -> list[str]:
    """One line per certificate of the collector's broker link (own, CA) expiring soon or unreadable."""
    tls = config.broker.tls
    if tls is None:
        return []
    try:
        found: list[CertInfo] = local_certificates(tls)
    except BrokerError as exc:
        return [str(exc)]
    return [f"collector's {c.describe(now_ms)}" for c in expiring(found, now_ms, tls.expiry_warning_days)
            if c.role in (Role.OWN, Role.CA)]  # fmt: skip
