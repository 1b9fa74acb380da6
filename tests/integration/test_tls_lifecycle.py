"""Certificate lifecycle against the shipped broker: expiry warnings, and new files taken without a restart."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator

import pytest

from linewarden import certs
from linewarden.certs import Role
from linewarden.mqtt import MqttClient
from linewarden.wire import events_topic
from tests.integration.secure_broker import BROKER_DAYS, ShippedBroker
from tests.waiting import async_wait_until

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def broker() -> Iterator[ShippedBroker]:
    b = ShippedBroker(["s1/a1"])
    b.start()
    yield b
    b.cleanup()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _replace(broker: ShippedBroker, name: str, issued: certs.Issued) -> None:
    ident = broker.identities[name]
    ident.key.write_bytes(issued.key_pem)
    ident.cert.write_bytes(issued.cert_pem)


async def test_expiring_own_and_broker_certificates_are_reported(broker: ShippedBroker, caplog):
    now = dt.datetime.now(dt.UTC)
    _replace(broker, "s1/a1", certs.issue(broker.authority, "s1/a1", now, days=5))
    client = MqttClient(broker.config("s1/a1", port=broker.mtls_port, mtls=True, expiry_warning_days=10), "test")
    with caplog.at_level(logging.WARNING, logger="linewarden.mqtt"):
        await client.start()
        try:
            await async_wait_until(lambda: client.connected, what="connected")
            expiring = {(c.role, c.subject) for c in client.expiring_certificates(_now_ms())}
            # the CA (a year) is not within 10 days; the broker's certificate (20 days) neither
            assert expiring == {(Role.OWN, "s1/a1")}
            assert client.expiring_certificates(_now_ms() + (BROKER_DAYS - 9) * certs.DAY_MS)[-1].role is Role.PEER
        finally:
            await client.stop()
    assert any("own certificate 's1/a1' expires in 4 days" in r.getMessage() for r in caplog.records)


async def test_a_renewed_certificate_is_taken_without_a_restart(broker: ShippedBroker):
    """An expired certificate is refused by the broker; writing the renewed one lets the same client in."""
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    _replace(broker, "s1/a1", certs.issue(broker.authority, "s1/a1", past, days=1))
    client = MqttClient(broker.config("s1/a1", port=broker.mtls_port, mtls=True, reload_interval="100ms"), "test")
    await client.start()
    try:
        await async_wait_until(lambda: client.failed_connects >= 1, what="the broker refuses the expired certificate")
        assert not client.connected
        _replace(broker, "s1/a1", certs.issue(broker.authority, "s1/a1", dt.datetime.now(dt.UTC), days=30))
        await async_wait_until(lambda: client.connected, what="connected with the renewed certificate")
        assert client.tls_reloads >= 1
        await client.publish(events_topic("s1", "a1"), b"after renewal")
    finally:
        await client.stop()


async def test_changed_files_reconnect_a_connected_client(broker: ShippedBroker):
    now = dt.datetime.now(dt.UTC)
    _replace(broker, "s1/a1", certs.issue(broker.authority, "s1/a1", now, days=30))
    client = MqttClient(broker.config("s1/a1", port=broker.mtls_port, mtls=True, reload_interval="100ms"), "test")
    await client.start()
    try:
        await async_wait_until(lambda: client.connected, what="connected")
        renewed = certs.issue(broker.authority, "s1/a1", now, days=90)
        _replace(broker, "s1/a1", renewed)
        own = certs.inspect_pem(renewed.cert_pem, Role.OWN)[0]
        await async_wait_until(lambda: client.tls_reloads == 1 and client.connected, what="reconnected")
        assert own in client.certificates()
    finally:
        await client.stop()


async def test_a_half_written_key_keeps_the_working_certificate(broker: ShippedBroker, caplog):
    now = dt.datetime.now(dt.UTC)
    _replace(broker, "s1/a1", certs.issue(broker.authority, "s1/a1", now, days=30))
    client = MqttClient(broker.config("s1/a1", port=broker.mtls_port, mtls=True, reload_interval="100ms"), "test")
    await client.start()
    try:
        await async_wait_until(lambda: client.connected, what="connected")
        with caplog.at_level(logging.WARNING, logger="linewarden.mqtt"):
            # a new certificate whose key has not been written yet: it does not match the old key
            broker.identities["s1/a1"].cert.write_bytes(certs.issue(broker.authority, "s1/a1", now, 60).cert_pem)
            await async_wait_until(lambda: any("cannot be used" in r.getMessage() for r in caplog.records),
                                   what="the unusable files reported")  # fmt: skip
        assert client.connected and client.tls_reloads == 0
    finally:
        await client.stop()
