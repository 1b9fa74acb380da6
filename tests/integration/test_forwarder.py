"""The forwarder against a real Mosquitto and a test collector (tests/ackers.py), with real SQLite outboxes.

Run as a script, this file is the child process of the kill -9 test: it appends and forwards until killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agent.forwarder import Forwarder
from agent.outbox import Outbox
from linewarden.config.agent import AgentConfig
from linewarden.config.load import convert
from linewarden.domain import State
from linewarden.errors import BrokerError
from linewarden.mqtt import MqttClient
from linewarden.wire import (
    Ack,
    Birth,
    Death,
    HeartbeatBody,
    MetricsBody,
    StateChangeBody,
    ack_topic,
    birth_topic,
    death_topic,
    decode,
    encode,
)
from simulators.broker import Mosquitto
from tests.ackers import Acker
from tests.waiting import async_wait_until

pytestmark = pytest.mark.broker

SITE = "plant-1"
REPO = Path(__file__).resolve().parents[2]


def make_config(port: int, agent: str, broker: dict[str, Any] | None = None, **outbox: Any) -> AgentConfig:
    return convert(AgentConfig,
        {
            "agent": {"id": agent, "site": SITE},
            "broker": broker or {"host": "127.0.0.1", "port": port, "keepalive": "5s"},
            "outbox": {"batch_max_events": 50, "window": 4, "ack_timeout": "300ms", **outbox},
            "assets": [{"id": "line-3", "criticality": "high"}],
            "targets": [{"id": "host", "asset": "line-3", "type": "host"}],
        }
    )


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def birth_factory(cfg: AgentConfig, outbox: Outbox) -> Callable[[], Birth]:
    def birth() -> Birth:
        return Birth(
            agent=cfg.agent.id, site=cfg.agent.site, epoch=outbox.epoch, boot="boot1", ts=wall_ms(),
            version="test", config_hash="x", targets=[],
        )

    return birth


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def copy_database(src: Path, dst: Path) -> None:
    for suffix in ("", "-wal"):
        if Path(f"{src}{suffix}").exists():
            Path(f"{dst}{suffix}").write_bytes(Path(f"{src}{suffix}").read_bytes())


def heartbeat() -> HeartbeatBody:
    return HeartbeatBody(interval_s=60, states={"host": State.UP})


def metrics(i: int) -> MetricsBody:
    return MetricsBody(target="host", minute=i, probes=1, failures=0)


def change() -> StateChangeBody:
    return StateChangeBody(target="host", asset="line-3", from_=State.UP, to=State.DOWN, reason="x", at=1)


class Running:
    """A forwarder running as a task, with its outbox."""

    def __init__(self, cfg: AgentConfig, outbox: Outbox) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.client = MqttClient(cfg.broker, client_id=f"agent-{cfg.agent.id}")
        self.forwarder = Forwarder(cfg, outbox, birth_factory(cfg, outbox), "boot1", wall_ms, self.client)
        self.task = asyncio.create_task(self.forwarder.run())

    def append(self, n: int, kind: str = "heartbeat") -> list[int]:
        body = heartbeat() if kind == "heartbeat" else metrics(0)
        seqs = self.outbox.append_many([(kind, body, wall_ms()) for _ in range(n)])
        self.forwarder.wake()
        return seqs

    async def stop(self) -> None:
        await asyncio.wait_for(self.forwarder.stop(), 10)
        await asyncio.wait_for(self.task, 10)


@contextlib.asynccontextmanager
async def acker_on(broker: Mosquitto, name: str = "acker") -> AsyncIterator[Acker]:
    acker = Acker(broker.host, broker.port, client_id=f"{name}-{os.getpid()}")
    await acker.start()
    await async_wait_until(lambda: acker.client.connected, what="acker connected")
    try:
        yield acker
    finally:
        await acker.stop()


@contextlib.asynccontextmanager
async def forwarding(cfg: AgentConfig, path: Path) -> AsyncIterator[Running]:
    running = Running(cfg, Outbox(path, cfg.outbox))
    try:
        yield running
    finally:
        await running.stop()
        running.outbox.close()


async def test_delivered_in_order_and_deleted_only_after_ack(mosquitto: Mosquitto, tmp_path: Path) -> None:
    cfg = make_config(mosquitto.port, "ordered")
    async with acker_on(mosquitto) as acker:
        births: list[Birth] = []
        deaths: list[Death] = []
        acker.client.subscribe(birth_topic(SITE, "ordered"), lambda _t, p: births.append(decode(Birth, p)))
        acker.client.subscribe(death_topic(SITE, "ordered"), lambda _t, p: deaths.append(decode(Death, p)))
        await acker.round_trip()
        acker.acking = False
        async with forwarding(cfg, tmp_path / "o.db") as run:
            run.append(420)
            key = ("ordered", run.outbox.epoch)
            await async_wait_until(lambda: len(acker.events[key]) == 420, what="all events at the collector")
            assert acker.first_delivery[key] == list(range(1, 421))
            assert run.outbox.stats().depth == 420  # PUBACKed by the broker, but not acked by the collector
            acker.acking = True  # the forwarder resends after ack_timeout; now the acks come
            await async_wait_until(lambda: run.outbox.stats().depth == 0, what="outbox drained by acks")
            assert run.forwarder.status().last_ack_seq == 420
            assert acker.duplicates > 0  # the resend after the ack timeout
            assert births and births[0].epoch == run.outbox.epoch and births[0].acked_through == 0
        await async_wait_until(lambda: deaths, what="death on clean stop")
        assert deaths[-1].reason == "stopped"


async def test_broker_down_at_startup_then_up(own_mosquitto: Mosquitto, tmp_path: Path) -> None:
    cfg = make_config(own_mosquitto.port, "late-broker")
    async with forwarding(cfg, tmp_path / "o.db") as run:
        run.append(120)
        await async_wait_until(lambda: run.client.failed_connects >= 1, what="a failed connection attempt")
        assert not run.forwarder.status().connected
        own_mosquitto.start()
        async with acker_on(own_mosquitto) as acker:
            await async_wait_until(lambda: run.outbox.stats().depth == 0, timeout=15, what="delivered")
            assert acker.seqs("late-broker", run.outbox.epoch) == list(range(1, 121))


async def test_broker_restart_mid_stream_loses_nothing(own_mosquitto: Mosquitto, tmp_path: Path) -> None:
    own_mosquitto.start()
    cfg = make_config(own_mosquitto.port, "restart", ack_timeout="60s")  # only the reconnect may trigger resends
    async with acker_on(own_mosquitto) as acker, forwarding(cfg, tmp_path / "o.db") as run:
        key = ("restart", run.outbox.epoch)

        stop = asyncio.Event()

        async def produce() -> int:
            """Append until told to stop: the restart lands mid-stream however slow the machine is."""
            appended = 0
            while not stop.is_set():
                appended += len(run.append(5))
                await asyncio.sleep(0.005)
            return appended

        producer = asyncio.create_task(produce())
        await async_wait_until(lambda: len(acker.events[key]) >= 100, what="first events delivered")
        acker.deaf = True  # what the broker PUBACKs from now on is lost with its memory
        stored = len(acker.events[key])
        await async_wait_until(lambda: run.forwarder.status().sent_through > stored + 50, what="sent into the void")
        own_mosquitto.restart()
        # batches read from the socket before the broker died are handled before the disconnect is
        await async_wait_until(lambda: acker.disconnects == 1, what="acker saw the restart")
        acker.deaf = False
        await async_wait_until(lambda: acker.client.connected, what="acker back")
        after = run.outbox.stats().next_seq
        await async_wait_until(lambda: run.outbox.stats().next_seq > after + 100, what="appending after the restart")
        stop.set()
        total = await producer
        await async_wait_until(lambda: run.outbox.stats().depth == 0, timeout=20, what="all acked")
        assert acker.seqs(*key) == list(range(1, total + 1))
        assert acker.first_delivery[key] == list(range(1, total + 1))


async def test_reconnect_seen_by_paho_before_the_loop_sends_nothing_early_and_never_pauses(
    own_mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """paho's thread loses the connection and opens the next one while the event loop lags behind (a busy
    machine): nothing may go out before the loop has processed the loss, and the batch in flight when the old
    connection died is resent at once, not after a refusal's pause."""
    own_mosquitto.start()
    cfg = make_config(own_mosquitto.port, "race", ack_timeout="60s")  # only the reconnect may trigger resends
    async with acker_on(own_mosquitto) as acker, forwarding(cfg, tmp_path / "o.db") as run:
        key = ("race", run.outbox.epoch)
        run.append(100)
        await async_wait_until(lambda: run.outbox.stats().depth == 0, what="first events delivered and acked")
        lock, held, holding = threading.Lock(), [], [True]
        deliver = run.client._call_on_loop

        def lagging(fn: Callable[..., None], *args: Any) -> None:  # the loop has not heard of these yet
            with lock:
                if holding[0]:
                    if fn != run.client._puback_on_loop:  # the broker dies before its PUBACKs reach the loop
                        held.append((fn, args))
                    return
            deliver(fn, *args)

        run.client._call_on_loop = lagging  # type: ignore[method-assign]
        run.append(50)
        await async_wait_until(lambda: run.forwarder.status().sent_through == 150, what="a batch in flight")
        own_mosquitto.restart()
        await async_wait_until(
            lambda: any(fn == run.client._connected_on_loop for fn, _ in held), what="paho reconnected"
        )
        run.append(50)
        await async_wait_until(lambda: not run.forwarder._changed.is_set(), what="the forwarder looked")
        assert not run.client.connected, "the loop has not caught up with the new connection"
        assert run.forwarder.status().sent_through == 150, "nothing sent on a connection the loop lags behind"
        with lock:
            holding[0] = False
        for fn, args in held:  # in order, as the loop would have run them
            fn(*args)
        await async_wait_until(lambda: run.outbox.stats().depth == 0, timeout=20, what="all acked")
        assert acker.first_delivery[key] == list(range(1, 201))
        assert not [r for r in caplog.records if "refused" in r.getMessage()], "a lost batch is no refusal"


async def test_collector_offline_holds_back_then_delivers_in_order(mosquitto: Mosquitto, tmp_path: Path) -> None:
    cfg = make_config(mosquitto.port, "held")
    async with acker_on(mosquitto) as acker, forwarding(cfg, tmp_path / "o.db") as run:
        await acker.pause()
        await async_wait_until(lambda: run.forwarder.status().collector_online is False, what="offline seen")
        run.append(200)
        await acker.round_trip()
        await acker.round_trip()
        assert acker.dropped_while_paused == 0
        assert run.outbox.stats().depth == 200
        await acker.resume()
        key = ("held", run.outbox.epoch)
        await async_wait_until(lambda: run.outbox.stats().depth == 0, what="delivered after resume")
        assert acker.first_delivery[key] == list(range(1, 201))


async def test_a_collector_coming_online_hears_the_birth_again(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """A collector that was away missed the birth, and its registry is where the targets' assets come from."""
    cfg = make_config(mosquitto.port, "reborn")
    async with acker_on(mosquitto) as acker, forwarding(cfg, tmp_path / "o.db") as run:
        births: list[Birth] = []
        acker.client.subscribe(birth_topic(SITE, "reborn"), lambda _t, p: births.append(decode(Birth, p)))
        await acker.round_trip()
        await acker.pause()
        await async_wait_until(lambda: run.forwarder.status().collector_online is False, what="offline seen")
        run.append(3)
        await acker.round_trip()
        before = len(births)
        await acker.resume()
        await async_wait_until(lambda: len(births) > before, what="birth sent again")
        assert (births[-1].epoch, births[-1].boot) == (run.outbox.epoch, "boot1")


async def test_new_outbox_database_starts_new_epoch_at_seq_one(mosquitto: Mosquitto, tmp_path: Path) -> None:
    cfg = make_config(mosquitto.port, "reinstalled")
    path = tmp_path / "o.db"
    async with acker_on(mosquitto) as acker:
        async with forwarding(cfg, path) as run:
            run.append(5)
            first_epoch = run.outbox.epoch
            await async_wait_until(lambda: run.outbox.stats().depth == 0, what="first epoch delivered")
        remove_database(path)
        async with forwarding(cfg, path) as run:
            assert run.append(3) == [1, 2, 3]
            assert run.outbox.epoch != first_epoch
            await async_wait_until(lambda: run.outbox.stats().depth == 0, what="second epoch delivered")
            assert acker.seqs("reinstalled", run.outbox.epoch) == [1, 2, 3]
        assert acker.seqs("reinstalled", first_epoch) == [1, 2, 3, 4, 5]


async def test_full_outbox_sends_gap_and_keeps_state_changes(mosquitto: Mosquitto, tmp_path: Path) -> None:
    cfg = make_config(mosquitto.port, "full", max_events=100)
    async with acker_on(mosquitto) as acker:
        await acker.pause()
        async with forwarding(cfg, tmp_path / "o.db") as run:
            await async_wait_until(lambda: run.forwarder.status().collector_online is False, what="offline seen")
            ts = wall_ms()
            for i in range(150):
                run.outbox.append("metrics", metrics(i), ts)
                if i % 30 == 0:
                    run.outbox.append("state_change", change(), ts)
            last = run.outbox.stats().next_seq - 1
            await acker.resume()
            key = ("full", run.outbox.epoch)
            await async_wait_until(lambda: acker.through[key] == last, what="acked through the gap")
        types = list(acker.events[key].values())
        gaps = acker.gaps[key]
        assert types.count("state_change") == 5
        assert gaps and all(g.dropped_types == ["metrics"] for g in gaps)
        assert sum(g.count for g in gaps) + len(types) - len(gaps) == 155


async def test_ack_for_another_epoch_is_ignored(mosquitto: Mosquitto, tmp_path: Path) -> None:
    cfg = make_config(mosquitto.port, "epochs")
    async with acker_on(mosquitto) as acker, forwarding(cfg, tmp_path / "o.db") as run:
        acker.acking = False
        run.append(10)
        key = ("epochs", run.outbox.epoch)
        await async_wait_until(lambda: len(acker.events[key]) == 10, what="delivered")
        topic = ack_topic(SITE, "epochs")
        await acker.client.publish(topic, encode(Ack(epoch="0000feedbeef", through=10)), retain=True)
        await acker.client.publish(topic, encode(Ack(epoch=run.outbox.epoch, through=3)), retain=True)
        await async_wait_until(lambda: run.outbox.stats().last_ack_seq == 3, what="own-epoch ack applied")
        assert run.outbox.stats().depth == 7


async def test_forged_ack_beyond_what_was_sent_deletes_nothing(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Any broker client may publish on an agent's ack topic (unless the broker's ACL stops it): an ack beyond
    what the agent has sent in its epoch, or for another epoch, is ignored, logged once per value and counted."""
    cfg = make_config(mosquitto.port, "forged")
    async with acker_on(mosquitto) as acker, forwarding(cfg, tmp_path / "o.db") as run:
        await acker.pause()
        await async_wait_until(lambda: run.forwarder.status().collector_online is False, what="offline seen")
        run.append(20)
        epoch = run.outbox.epoch
        topic = ack_topic(SITE, "forged")
        forged = [(epoch, 20), (epoch, 10**12), (epoch, 10**12), ("0000feedbeef", 5)]  # 20: all written, none sent
        for forged_epoch, through in forged:
            await acker.client.publish(topic, encode(Ack(epoch=forged_epoch, through=through)), retain=True)
        await async_wait_until(
            lambda: run.outbox.stats().depth < 20 or getattr(run.forwarder.status(), "rejected_acks", 0) == 4,
            what="forged acks counted",
        )
        assert run.outbox.stats().depth == 20, "nothing deleted"
        assert run.outbox.epoch == epoch, "a forged ack is no proof of a restored database"
        logged = [r for r in caplog.records if "ignored" in r.getMessage() and r.name == "agent.forwarder"]
        assert len(logged) == 3, "once per distinct value"
        await acker.resume()
        await async_wait_until(lambda: run.outbox.stats().depth == 0, what="delivered and acked later")
        assert acker.seqs("forged", epoch) == list(range(1, 21))


async def test_mqtt5_delivery_and_failed_publish_when_disconnected(mosquitto: Mosquitto, tmp_path: Path) -> None:
    cfg = make_config(mosquitto.port, "v5", broker={"port": mosquitto.port, "protocol": "5"})
    assert cfg.broker.protocol == "5"
    async with acker_on(mosquitto) as acker, forwarding(cfg, tmp_path / "o.db") as run:
        run.append(60)
        await async_wait_until(lambda: run.outbox.stats().depth == 0, what="delivered over MQTT 5")
        assert acker.seqs("v5", run.outbox.epoch) == list(range(1, 61))
    with pytest.raises(BrokerError, match="not connected"):
        run.client.publish("lw/v1/x", b"{}")


@pytest.mark.slow
async def test_kill_9_mid_forwarding_loses_nothing(mosquitto: Mosquitto, tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    cfg = make_config(mosquitto.port, "killed")
    async with acker_on(mosquitto) as acker:
        deaths: list[Death] = []
        acker.client.subscribe(death_topic(SITE, "killed"), lambda _t, p: deaths.append(decode(Death, p)))
        await acker.round_trip()
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, str(path), str(mosquitto.port), env={**os.environ, "PYTHONPATH": str(REPO)}
        )
        try:
            await async_wait_until(lambda: acker.total() >= 300, timeout=20, what="child forwarding")
        finally:
            child.send_signal(signal.SIGKILL)
            await asyncio.wait_for(child.wait(), 10)
        await async_wait_until(lambda: deaths, what="last will")
        assert deaths[0].reason == "connection lost"

        async with forwarding(cfg, path) as run:
            committed = run.outbox.stats().next_seq - 1
            key = ("killed", run.outbox.epoch)
            await async_wait_until(lambda: acker.through[key] == committed, timeout=20, what="backlog delivered")
            assert acker.seqs(*key) == list(range(1, committed + 1))
            assert run.append(1) == [committed + 1]
            await async_wait_until(lambda: acker.through[key] == committed + 1, what="continues at N+1")


async def _child(path: Path, port: int) -> None:
    cfg = make_config(port, "killed")
    run = Running(cfg, Outbox(path, cfg.outbox))
    while True:
        run.append(5)
        await asyncio.sleep(0.002)


if __name__ == "__main__":
    asyncio.run(_child(Path(sys.argv[1]), int(sys.argv[2])))


async def test_restored_backup_of_the_outbox_starts_a_new_epoch(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """A database restored from a backup would reuse seqs the collector already has: it must notice and move
    to a new epoch, so its new events are not taken for duplicates."""
    cfg = make_config(mosquitto.port, "restored")
    path, backup = tmp_path / "outbox.db", tmp_path / "backup.db"
    outbox = Outbox(path, cfg.outbox)
    outbox.append_many([("heartbeat", heartbeat(), wall_ms()) for _ in range(3)])
    outbox.close()
    copy_database(path, backup)
    async with acker_on(mosquitto) as acker:
        async with forwarding(cfg, path) as run:
            old_epoch = run.outbox.epoch
            run.append(7)
            await async_wait_until(lambda: acker.through[("restored", old_epoch)] == 10, what="first life acked")
        remove_database(path)
        copy_database(backup, path)
        async with forwarding(cfg, path) as run:
            assert run.outbox.epoch == old_epoch, "the backup carries the old epoch"
            new_seqs = run.append(4, "metrics")  # seqs 4..7 again: the collector holds 4..10 of the old epoch
            await async_wait_until(lambda: run.outbox.epoch != old_epoch, what="a new epoch after the retained ack")
            new_key = ("restored", run.outbox.epoch)
            await async_wait_until(lambda: run.outbox.stats().depth == 0, what="restored events acked")
            assert acker.seqs(*new_key) == [1, 2, 3, *new_seqs]
            assert [acker.events[new_key][s] for s in new_seqs] == ["metrics"] * 4, "the new events arrived"
