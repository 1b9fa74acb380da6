"""Certificate ends as a Prometheus gauge, for the agent's and the collector's /metrics (imported by them only,
so nothing else loads prometheus_client)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from linewarden.certs import CertInfo


class CertificateFigures(Collector):
    """When each certificate of the broker link ends (own, CA, and the broker's as seen at connect), for an
    alert such as `linewarden_collector_certificate_expiry_timestamp_seconds - time() < 30 * 86400`."""

    def __init__(self, prefix: str, certificates: Callable[[], list[CertInfo]]) -> None:
        self.name = f"{prefix}_certificate_expiry_timestamp_seconds"
        self.certificates = certificates

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, "end of validity of a certificate of the broker link",
                                   labels=["role", "subject"])  # fmt: skip
        for cert in self.certificates():
            family.add_metric([cert.role.value, cert.subject], cert.not_after_ms / 1000)
        yield family
