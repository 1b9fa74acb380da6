"""The shipped Mosquitto ACL (packaging/mosquitto/linewarden.acl) on a real broker with a password file."""

from __future__ import annotations

import getpass
import shutil
import subprocess
from pathlib import Path

import pytest

from linewarden.config.base import BrokerConfig, Secret
from linewarden.mqtt import MqttClient
from linewarden.wire import Ack, ack_topic, birth_topic, encode, events_topic
from tests.integration.collector_helpers import birth, heartbeats
from tests.waiting import async_wait_until

SITE = "plant1"
ACL = Path(__file__).parents[2] / "packaging" / "mosquitto" / "linewarden.acl"
USERS = ("a1", "a2", "collector")


def _client(broker: object, user: str, monkeypatch: pytest.MonkeyPatch) -> MqttClient:
    monkeypatch.setenv(f"LW_TEST_PW_{user.upper()}", f"pw-{user}")
    config = BrokerConfig(
        host=broker.host,  # type: ignore[attr-defined]
        port=broker.port,  # type: ignore[attr-defined]
        username=user,
        password=Secret(env=f"LW_TEST_PW_{user.upper()}"),
    )
    return MqttClient(config, client_id=f"acl-{user}")


@pytest.mark.broker
@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd is not installed")
async def test_the_shipped_acl_lets_an_agent_publish_and_read_only_as_itself(own_mosquitto, tmp_path, monkeypatch):
    passwd = tmp_path / "passwd"
    passwd.touch(mode=0o600)
    for user in USERS:
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, f"pw-{user}"], check=True, capture_output=True)
    own_mosquitto.conf.write_text(
        f"listener {own_mosquitto.port} {own_mosquitto.host}\n"
        f"allow_anonymous false\npassword_file {passwd}\nacl_file {ACL}\npersistence false\n"
        f"log_dest file {own_mosquitto.log}\n"
        f"user {getpass.getuser()}\n"  # started as root, Mosquitto would drop to a user that cannot read tmp_path
    )
    own_mosquitto.start()
    seen: list[str] = []
    acks_of_a1: list[str] = []
    collector = _client(own_mosquitto, "collector", monkeypatch)
    collector.subscribe("lw/v1/#", lambda topic, _p: seen.append(topic))
    a1 = _client(own_mosquitto, "a1", monkeypatch)
    a1.subscribe(ack_topic(SITE, "a2"), lambda topic, _p: acks_of_a1.append(topic))
    a1.subscribe(ack_topic(SITE, "a1"), lambda topic, _p: acks_of_a1.append(topic))
    await collector.start()
    await a1.start()
    try:
        await async_wait_until(lambda: collector.connected and a1.connected, what="both connected")
        # a1 tries to speak as a2, then speaks as itself (one connection: delivered in order)
        await a1.publish(birth_topic(SITE, "a2"), encode(birth(SITE, "a2")))
        await a1.publish(events_topic(SITE, "a2"), heartbeats(SITE, "a2", [1]))
        await a1.publish(events_topic(SITE, "a1"), heartbeats(SITE, "a1", [1]))
        await async_wait_until(lambda: events_topic(SITE, "a1") in seen, what="a1's own batch delivered")
        assert seen == [events_topic(SITE, "a1")]
        # the collector acks a2, then a1: a1 hears only its own
        await collector.publish(ack_topic(SITE, "a2"), encode(Ack(epoch="e1", through=1)))
        await collector.publish(ack_topic(SITE, "a1"), encode(Ack(epoch="e1", through=1)))
        await async_wait_until(lambda: ack_topic(SITE, "a1") in acks_of_a1, what="a1's ack delivered")
        assert acks_of_a1 == [ack_topic(SITE, "a1")]
    finally:
        await a1.stop()
        await collector.stop()
