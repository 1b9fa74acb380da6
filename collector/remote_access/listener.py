"""The collector's syslog listener for remote-session records: UDP (one message per datagram) and TCP
(RFC 6587: octet-counted frames, or lines ending in LF), each enabled in `[remote_access]`.

Received messages wait in a bounded queue and are written by one task, off the event loop; a full queue
drops the message and counts it. A malformed message is dead-lettered (topic `remote-access/syslog`) and
counted; a TCP frame longer than `max_message_bytes` is dead-lettered and ends that connection (its framing
can no longer be trusted). Nothing a peer sends stops the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from collector.remote_access.records import record
from collector.remote_access.syslog import SyslogError, parse
from collector.store.base import Store
from linewarden.config.remote_access import RemoteAccessConfig, split_listen

log = logging.getLogger(__name__)

TOPIC = "remote-access/syslog"
QUEUE_MAX = 10_000
REJECTED = "remote_access_rejected"
DROPPED = "remote_access_dropped"


def _count(store: Store, name: str) -> None:
    with store.transaction() as tx:
        tx.sql.execute(
            "INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET"
            " value = counters.value + 1",
            (name,),
        )


def handle(store: Store, data: bytes, peer: str, received_at: int) -> bool:
    """Record one message; False when it was dead-lettered."""
    try:
        event = parse(data)
    except SyslogError as exc:
        with store.transaction() as tx:
            tx.add_dead_letter(TOPIC, data, f"from {peer}: {exc}", received_at, None, None)
            tx.sql.execute(
                "INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET"
                " value = counters.value + 1",
                (REJECTED,),
            )
        return False
    if event is not None:
        with store.transaction() as tx:
            record(tx.sql, event, received_at)
    return True


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, put: Callable[[bytes, str], None]) -> None:
        self.put = put

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.put(data, str(addr[0]))


class SyslogListener:
    def __init__(self, store: Store, config: RemoteAccessConfig, clock: Callable[[], int]) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.udp_port: int | None = None
        self.tcp_port: int | None = None
        self._queue: asyncio.Queue[tuple[bytes, str, int, bool]] = asyncio.Queue(QUEUE_MAX)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._writer: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def _put(self, data: bytes, peer: str, oversize: bool = False) -> None:
        limit = self.config.max_message_bytes
        try:
            self._queue.put_nowait((data[:limit], peer, self.clock(), oversize or len(data) > limit))
        except asyncio.QueueFull:
            _count(self.store, DROPPED)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._writer = asyncio.create_task(self._write_forever(), name="remote-access-writer")
        if self.config.syslog_udp is not None:
            host, port = split_listen(self.config.syslog_udp)
            transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self._put), local_addr=(host, port))
            self._udp = transport
            self.udp_port = int(transport.get_extra_info("sockname")[1])
            log.info("remote-access syslog on udp %s:%d", host, self.udp_port)
        if self.config.syslog_tcp is not None:
            host, port = split_listen(self.config.syslog_tcp)
            limit = self.config.max_message_bytes + 16
            self._tcp = await asyncio.start_server(self._connection, host, port, limit=limit)
            self.tcp_port = int(self._tcp.sockets[0].getsockname()[1])
            log.info("remote-access syslog on tcp %s:%d", host, self.tcp_port)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        self._udp = self._tcp = self._writer = None

    async def _write_forever(self) -> None:
        while True:
            data, peer, at, oversize = await self._queue.get()
            try:
                if oversize:
                    reason = f"a message over {self.config.max_message_bytes} bytes (kept: its start)"
                    await asyncio.to_thread(self._oversize, data, peer, reason, at)
                else:
                    await asyncio.to_thread(handle, self.store, data, peer, at)
            except Exception:  # a store failure loses this record, never the listener
                log.exception("remote-access record from %s not stored", peer)

    def _oversize(self, data: bytes, peer: str, reason: str, at: int) -> None:
        with self.store.transaction() as tx:
            tx.add_dead_letter(TOPIC, data, f"from {peer}: {reason}", at, None, None)
        _count(self.store, REJECTED)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        peer = str((writer.get_extra_info("peername") or ("?",))[0])
        if len(self._connections) >= self.config.max_connections or task is None:
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._frames(reader, peer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _frames(self, reader: asyncio.StreamReader, peer: str) -> None:
        limit = self.config.max_message_bytes
        while True:
            first = await reader.read(1)
            if not first:
                return
            try:
                if first.isdigit():  # octet counting: MSG-LEN SP SYSLOG-MSG
                    digits = (first + await reader.readuntil(b" "))[:-1]
                    if not digits.isdigit() or len(digits) > 6 or int(digits) > limit:
                        self._put(digits, peer, oversize=True)
                        return
                    self._put(await reader.readexactly(int(digits)), peer)
                else:  # non-transparent framing: up to LF
                    line = first + await reader.readuntil(b"\n")
                    self._put(line.rstrip(b"\r\n"), peer)
            except asyncio.LimitOverrunError:
                self._put(await reader.read(limit), peer, oversize=True)
                return  # the framing is lost: end the connection
