"""The MQTT adapter: the one module that imports paho-mqtt, shared by the agent and the collector.

This is an I/O adapter living in `linewarden/` as a documented exception to the pure core: the agent and the
collector must not import each other, and both need the same careful handling of paho (users-and-pitfalls B3):

- paho's network thread (`loop_start`) does the socket work; it reaches asyncio only through
  `loop.call_soon_threadsafe`, so every hook and handler of this class runs on the event loop thread.
- Every paho callback is wrapped in try/except with logging: an exception escaping a callback would end the
  network thread, and with it every later reconnect, silently.
- `connect_async` + automatic reconnect with capped backoff (1 s .. 30 s), so a broker that is down at start-up
  or restarts later is simply reached when it comes back.
- `publish` returns a future resolved by the PUBACK; on MQTT 5 a PUBACK with a failure reason code (>= 0x80) is a
  failure (BrokerError), not a success; a connection lost first fails it with ConnectionLost. Publishing while
  disconnected raises at once instead of queueing inside paho, and paho's own queue is bounded: the caller's
  durable store is the buffer, not paho's memory.
- Connections are numbered (sessions). paho's thread may lose the connection and open the next one before the
  event loop has heard of the loss; until the loop has caught up with the network thread's session, the client
  counts as not connected and `publish` refuses, so nothing goes out on a connection whose loss of its
  predecessor (failing that one's futures) and whose connect hook have not run yet.
- Subscriptions are kept here and restored on every (re)connect.
- A broker cluster (`nodes`): each node is tried in turn with a paho client of its own; a refused or lost
  connection, or no CONNACK within `connect_timeout`, moves on to the next node at once, and a round in which
  every node failed is followed by a wait (`linewarden/failover.py`). So does a node that has not granted every
  subscription of the connect within `connect_timeout`: a clustered broker can accept the connection while it
  cannot set a subscription up yet (NATS while its JetStream elects leaders), and a client without its ack
  subscription would resend forever unheard. A refused subscription is asked for again every
  `SUBSCRIBE_RETRY_S` until then, on the same connection (cheaper than a new one, which NATS may refuse too).
  Everything above holds across the switch: it is a reconnect, to another node.
- Subscriptions are kept here and restored on every (re)connect. A shared subscription (`shared()`,
  `$share/<group>/<filter>`) is matched against incoming topics by its filter part.
- TLS: the broker's chain is always verified; `verify_hostname = false` skips only the host name check. The
  certificate, key and CA files are checked for changes every `reload_interval` and after a failed connect;
  on a change the client reconnects with a new SSL context (a new paho client: paho sets TLS up once).
  Certificates (own, CA, the broker's as seen at connect) that expire within `expiry_warning_days` are logged
  as warnings and listed by `expiring_certificates()`.

Messages in flight when the connection drops are failed here, and dropped from paho's queue at the next
connect (paho would otherwise send them again before anything newer, against the spec for a clean session): a
failed future means "not sent by this client", the caller (the agent's outbox) sends again, in order.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from linewarden.certs import DAY_MS, CertError, CertInfo, Role, expiring, inspect_der, inspect_pem
from linewarden.config.base import BrokerConfig, TlsConfig
from linewarden.errors import BrokerError, ConnectionLost
from linewarden.failover import NodeRotation
from linewarden.files import read_small

log = logging.getLogger(__name__)

# A handler may return a future: the message is then PUBACKed only when that future completes (the collector
# holding back a batch it could not commit yet), and not at all if the connection changed meanwhile.
MessageHandler = Callable[[str, bytes], "asyncio.Future[None] | None"]
Hook = Callable[[], None]

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
# paho's in-flight limit; larger windows make paho slower per PUBACK (perf anchors B3), callers window themselves.
MAX_INFLIGHT = 20
# paho's own queue only ever holds what is in flight or racing a disconnect; never an outage's worth of data.
MAX_QUEUED = 1000
# With a cluster: the wait before asking again for a subscription the node refused.
SUBSCRIBE_RETRY_S = 0.5
SHARE_PREFIX = "$share/"
# Largest certificate file read for its expiry (a system CA bundle is a few hundred KiB).
MAX_PEM_BYTES = 4 * 1024 * 1024
ROUTES_KEPT = 10_000  # topics whose matching handlers are remembered (one per agent and message kind)


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


class MqttClient:
    """An asyncio face on a paho-mqtt 2.x client. Create, `await start()`, use, `await stop()`."""

    def __init__(self, config: BrokerConfig, client_id: str, will: Will | None = None) -> None:
        self._config = config
        self._client_id = config.client_id or client_id
        self._will = will
        self._protocol = MQTTProtocolVersion.MQTTv5 if config.protocol == "5" else MQTTProtocolVersion.MQTTv311
        self._paho: paho.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = False
        self.failed_connects = 0  # connection attempts that failed (broker down, refused); for status
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._session = 0  # counts connections; a message is acked only on the connection that brought it
        self._loop_session = 0  # the session the event loop has processed the connect of
        self._subscriptions: dict[str, MessageHandler] = {}
        self._optional: set[str] = set()  # subscriptions a broker may refuse without the node counting as failed
        self._routes: dict[str, list[MessageHandler]] = {}  # topic -> the handlers whose filters match it
        self.on_connect: Hook | None = None
        self.on_disconnect: Hook | None = None
        self.tls_reloads = 0  # times the client reconnected with changed certificate files
        self._tls_files: FileStamps = ()
        self._failed_files: FileStamps = ()
        self._local_certs: list[CertInfo] = []
        self._peer_cert: CertInfo | None = None
        self._warned_at: dict[CertInfo, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reloading = False
        self._refused = False  # the broker refused the CONNECT; its closing the socket is the same failure
        self._nodes = config.endpoints()
        self._node = 0  # index into _nodes of the node connected to or being tried
        self._rotation = (
            NodeRotation(
                len(self._nodes),
                RECONNECT_MIN_S,
                config.round_wait_max.total_seconds(),
                stable_s=config.connect_timeout.total_seconds(),
            )
            if len(self._nodes) > 1
            else None
        )
        self._context: ssl.SSLContext | None = None
        self._switching = False  # moving to the next node of a cluster
        # With a cluster: the connect's subscriptions not granted yet (by mid), and until when they may take.
        self._suback_due: dict[int, str] = {}
        self._suback_deadline = 0.0

    @property
    def connected(self) -> bool:
        """Connected, and the event loop has caught up with the network thread's current connection."""
        return self._connected and self._loop_session == self._session

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def broker(self) -> str:
        """`host:port` of the broker (the cluster's node) connected to or being tried."""
        host, port = self._nodes[self._node]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def set_will(self, will: Will | None) -> None:
        """Set the Last Will sent with the next CONNECT (call before `start()` to cover the first one)."""
        self._will = will
        if self._paho is not None:
            self._apply_will(self._paho)

    def certificates(self) -> list[CertInfo]:
        """Own certificate, the CA certificates and the broker's (once connected over TLS)."""
        return [*self._local_certs, *([self._peer_cert] if self._peer_cert is not None else [])]

    def expiring_certificates(self, now_ms: int) -> list[CertInfo]:
        tls = self._config.tls
        return [] if tls is None else expiring(self.certificates(), now_ms, tls.expiry_warning_days)

    async def start(self) -> None:
        """Begin connecting in the background; returns at once, even when the broker is down.

        Raises BrokerError when the TLS files cannot be used (missing, unreadable, not matching)."""
        if self._paho is not None:
            return
        self._loop = asyncio.get_running_loop()
        tls = self._config.tls
        context = None
        if tls is not None:
            self._tls_files = file_stamps(tls)
            context = self._ssl_context(tls)
        self._context = context
        self._paho = self._new_client(context)
        self._paho.loop_start()
        self._await_connack(self._paho)
        if tls is not None:
            self._spawn(self._watch_tls(tls))

    async def reload_if_changed(self) -> bool:
        """Reconnect with a new SSL context when the certificate, key or CA files changed; True if it did."""
        tls = self._config.tls
        if tls is None or self._paho is None or self._reloading or self._switching:
            return False
        stamps = file_stamps(tls)
        if stamps in (self._tls_files, self._failed_files):
            return False
        try:
            context = self._ssl_context(tls)
        except BrokerError as exc:
            self._failed_files = stamps  # e.g. a certificate written before its key; retried on the next change
            log.warning("MQTT TLS files changed but cannot be used (keeping the current ones): %s", exc)
            return False
        self._reloading = True
        try:
            old, self._paho = self._paho, None
            old.disconnect()
            await asyncio.to_thread(old.loop_stop)
            if self._connected:
                self._disconnected_on_loop("reconnecting with new TLS files")
            self._tls_files, self._peer_cert = stamps, None
            self._context = context
            self._paho = self._new_client(context)
            self._paho.loop_start()
            self._await_connack(self._paho)
        finally:
            self._reloading = False
        self.tls_reloads += 1
        log.info("MQTT TLS files changed; reconnecting with the new certificates")
        return True

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch_tls(self, tls: TlsConfig) -> None:
        while True:
            await asyncio.sleep(tls.reload_interval.total_seconds())
            try:
                await self.reload_if_changed()
                self._warn_expiring()
            except Exception:
                log.exception("error checking the MQTT TLS files")

    def _ssl_context(self, tls: TlsConfig) -> ssl.SSLContext:
        """Chain verification is always on (CERT_REQUIRED); only the host name check can be turned off."""
        try:
            context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
            context.check_hostname = tls.verify_hostname
            if tls.cert_file is not None:
                context.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise BrokerError(f"broker TLS files: {exc}") from None
        self._local_certs = local_certificates(tls)
        self._warn_expiring()
        return context

    def _warn_expiring(self) -> None:
        """Log each expiring certificate once a day while it is in use."""
        now_ms = int(time.time() * 1000)
        for cert in self.expiring_certificates(now_ms):
            if now_ms - self._warned_at.get(cert, -DAY_MS) >= DAY_MS:
                self._warned_at[cert] = now_ms
                log.warning("MQTT TLS: %s (broker %s)", cert.describe(now_ms), self.broker)

    def _new_client(self, context: ssl.SSLContext | None) -> paho.Client:
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=self._protocol,
            clean_session=True if self._protocol == MQTTProtocolVersion.MQTTv311 else None,
            manual_ack=True,
            # In a cluster the next attempt goes to the next node, with a new client (_fail_over).
            reconnect_on_failure=self._rotation is None,
        )
        if self._rotation is not None:
            client.connect_timeout = self._config.connect_timeout.total_seconds()
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.max_queued_messages_set(MAX_QUEUED)
        if self._config.username is not None:
            try:
                password = self._config.password.reveal() if self._config.password is not None else None
            except ValueError as exc:
                raise BrokerError(f"broker password: {exc}") from None
            client.username_pw_set(self._config.username, password)
        if context is not None:
            client.tls_set_context(context)
        self._apply_will(client)
        client.on_connect = self._paho_on_connect
        client.on_disconnect = self._paho_on_disconnect
        client.on_connect_fail = self._paho_on_connect_fail
        client.on_publish = self._paho_on_publish
        client.on_message = self._paho_on_message
        client.on_subscribe = self._paho_on_subscribe
        host, port = self._nodes[self._node]
        client.connect_async(
            host,
            port,
            keepalive=max(1, int(self._config.keepalive.total_seconds())),
            clean_start=True,
        )
        return client

    async def stop(self) -> None:
        """Disconnect cleanly (no Last Will) and end the network thread."""
        for task in list(self._tasks):
            task.cancel()
        client, self._paho = self._paho, None
        if client is None:
            return
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        self._connected = False
        self._fail_pending("client stopped")

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> asyncio.Future[None]:
        """Hand one message to the broker now; the returned future resolves on its PUBACK (QoS 0: at once).

        Raises BrokerError at once when not connected or paho's queue is full; the future fails with
        BrokerError when the connection drops first or the broker answers with a failure reason code.
        Calls made in order go out in order.
        """
        if self._paho is None or self._loop is None or not self.connected:
            raise BrokerError("not connected to the MQTT broker")
        info = self._paho.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise BrokerError(f"publish to {topic} refused: {paho.error_string(info.rc)}")
        future: asyncio.Future[None] = self._loop.create_future()
        if qos == 0:
            future.set_result(None)
        else:
            # The PUBACK is handed over by call_soon_threadsafe, so it is processed after this registration.
            self._pending[info.mid] = future
        return future

    def subscribe(self, topic_filter: str, handler: MessageHandler, required: bool = True) -> None:
        """Call `handler(topic, payload)` on the event loop for each message; kept across reconnects. A cluster's
        node that refuses a `required` subscription is a failed node; refusing another one is only logged."""
        self._subscriptions[topic_filter] = handler
        if not required:
            self._optional.add(topic_filter)
        self._routes.clear()
        if self._paho is not None and self._connected:
            self._paho.subscribe(topic_filter, qos=1)

    # ------------------------------------------------------------ paho thread

    def _apply_will(self, client: paho.Client) -> None:
        if self._will is None:
            client.will_clear()
        else:
            client.will_set(self._will.topic, self._will.payload, qos=self._will.qos, retain=self._will.retain)

    def _call_on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    def _paho_on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        try:
            if reason.is_failure:
                self._call_on_loop(self._refused_on_loop, f"refused: {reason}")
                self._node_news(client, f"refused the connection: {reason}")
                return
            _drop_unsent(client)
            self._session += 1  # in the network thread, before any message of the new session is read
            mids = {}
            for topic_filter in list(self._subscriptions):
                mid = client.subscribe(topic_filter, qos=1)[1]
                if mid is not None and topic_filter not in self._optional:
                    mids[mid] = topic_filter
            if self._rotation is not None:
                self._call_on_loop(self._subscribing_on_loop, client, mids)
            sock = client.socket()
            peer = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
            self._call_on_loop(self._connected_on_loop, peer, self._session)
        except Exception:
            log.exception("error in MQTT on_connect")

    def _paho_on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        try:
            self._call_on_loop(self._connect_failed_on_loop, "unreachable")
            self._node_news(client, "unreachable")
        except Exception:
            log.exception("error in MQTT on_connect_fail")

    def _paho_on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        try:
            self._call_on_loop(self._disconnected_on_loop, str(reason))
            self._node_news(client, f"connection lost ({reason})")
        except Exception:
            log.exception("error in MQTT on_disconnect")

    def _paho_on_publish(self, client: paho.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        try:
            failure = str(reason) if reason.is_failure else None
            self._call_on_loop(self._puback_on_loop, mid, failure)
        except Exception:
            log.exception("error in MQTT on_publish")

    def _paho_on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, reasons: list[Any], properties: Any
    ) -> None:
        try:
            refused = ", ".join(str(r) for r in reasons if r.is_failure) or None
            if self._rotation is not None:
                self._call_on_loop(self._subacked_on_loop, client, mid, refused)
            elif refused:
                self._call_on_loop(log.warning, "MQTT broker %s refused a subscription: %s", self.broker, refused)
        except Exception:
            log.exception("error in MQTT on_subscribe")

    def _paho_on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            self._call_on_loop(
                self._message_on_loop, message.topic, bytes(message.payload), message.mid, message.qos, self._session
            )
        except Exception:
            log.exception("error in MQTT on_message")

    def _node_news(self, client: paho.Client, why: str) -> None:
        if self._rotation is not None:
            self._call_on_loop(self._node_failed, client, why)

    # ------------------------------------------------------------ event loop thread

    def _await_connack(self, client: paho.Client) -> None:
        if self._rotation is not None and self._loop is not None:
            timeout = self._config.connect_timeout.total_seconds()
            self._loop.call_later(timeout, self._connack_due, client, timeout)

    def _connack_due(self, client: paho.Client, timeout: float) -> None:
        if client is self._paho and not self._connected:
            self._node_failed(client, f"no CONNACK within {timeout:g} s")

    def _subscribing_on_loop(self, client: paho.Client, mids: dict[int, str]) -> None:
        if client is not self._paho or self._loop is None:
            return
        self._suback_due = dict(mids)
        timeout = self._config.connect_timeout.total_seconds()
        self._suback_deadline = self._loop.time() + timeout
        self._loop.call_later(timeout, self._suback_due_check, client)

    def _subacked_on_loop(self, client: paho.Client, mid: int, refused: str | None) -> None:
        topic_filter = self._suback_due.pop(mid, None) if client is self._paho else None
        if refused is None or self._loop is None:
            return
        if topic_filter is None:
            if client is self._paho:  # a subscription the node may refuse
                log.warning("MQTT broker %s refused a subscription: %s", self.broker, refused)
            return
        if self._loop.time() >= self._suback_deadline:
            self._node_failed(client, f"refused the subscription to {topic_filter} ({refused})")
            return
        log.info("MQTT broker %s refused the subscription to %s (%s); asking again", self.broker, topic_filter, refused)
        self._loop.call_later(SUBSCRIBE_RETRY_S, self._resubscribe, client, topic_filter)

    def _resubscribe(self, client: paho.Client, topic_filter: str) -> None:
        if client is self._paho and self._connected:
            mid = client.subscribe(topic_filter, qos=1)[1]
            if mid is not None:
                self._suback_due[mid] = topic_filter

    def _suback_due_check(self, client: paho.Client) -> None:
        if client is self._paho and self._connected and self._suback_due:
            pending = ", ".join(sorted(set(self._suback_due.values())))
            timeout = self._config.connect_timeout.total_seconds()
            self._node_failed(client, f"subscriptions not granted within {timeout:g} s: {pending}")

    def _node_failed(self, client: paho.Client, why: str) -> None:
        """A cluster's node failed this client: move to the next (news of a client already replaced is old)."""
        if client is not self._paho or self._switching or self._reloading:
            return
        self._switching = True
        self._spawn(self._fail_over(why))

    async def _fail_over(self, why: str) -> None:
        assert self._rotation is not None and self._loop is not None
        try:
            while True:
                failed = self.broker
                index, wait = self._rotation.failed(self._loop.time(), random.random())
                old, self._paho = self._paho, None
                if old is not None:
                    old.disconnect()
                    await asyncio.to_thread(old.loop_stop)
                if self._connected:
                    self._disconnected_on_loop(f"moving to another node ({why})")
                self._node = index
                later = f" in {wait:.1f} s (every node failed in turn)" if wait else ""
                log.warning("MQTT broker %s failed: %s; trying %s%s", failed, why, self.broker, later)
                await asyncio.sleep(wait)
                try:
                    self._paho = self._new_client(self._context)
                except BrokerError as exc:
                    why = str(exc)
                    continue
                self._paho.loop_start()
                self._await_connack(self._paho)
                return
        finally:
            self._switching = False

    def _connected_on_loop(self, peer_der: bytes | None, session: int) -> None:
        if self._paho is None:
            return
        self._connected = True
        self._loop_session = session
        self.failed_connects = 0
        self._refused = False
        if self._rotation is not None and self._loop is not None:
            self._rotation.connected(self._loop.time())
        if peer_der:
            try:
                self._peer_cert = inspect_der(peer_der, Role.PEER)
            except CertError as exc:
                log.warning("cannot read the broker's certificate: %s", exc)
            self._warn_expiring()
        log.info("MQTT connected to %s as %s", self.broker, self._client_id)
        self._run_hook(self.on_connect)

    def _connect_failed_on_loop(self, why: str) -> None:
        self.failed_connects += 1
        level = logging.WARNING if self.failed_connects == 1 else logging.DEBUG
        log.log(level, "MQTT broker %s %s; retrying", self.broker, why)
        if self._config.tls is not None and self._paho is not None:
            self._spawn(self.reload_if_changed())  # a broker refusing an expired certificate: try the renewed one

    def _refused_on_loop(self, why: str) -> None:
        self._refused = True
        self._connect_failed_on_loop(why)

    def _disconnected_on_loop(self, reason: str) -> None:
        was_connected, self._connected = self._connected, False
        self._fail_pending(f"connection lost ({reason})")
        if was_connected:
            log.info("MQTT disconnected from %s: %s", self.broker, reason)
            self._run_hook(self.on_disconnect)
        elif self._refused:
            self._refused = False
        elif self._paho is not None:
            # closed before CONNACK, e.g. a TLS 1.3 broker rejecting the client certificate after the handshake
            self._connect_failed_on_loop(f"closed the connection ({reason})")

    def _puback_on_loop(self, mid: int, failure: str | None) -> None:
        future = self._pending.pop(mid, None)
        if future is None or future.done():
            return
        if failure is None:
            future.set_result(None)
        else:
            future.set_exception(BrokerError(f"broker refused the message: {failure}"))

    def _message_on_loop(self, topic: str, payload: bytes, mid: int, qos: int, session: int) -> None:
        deferred: list[asyncio.Future[None]] = []
        for handler in self._handlers_of(topic):
            try:
                later = handler(topic, payload)
            except Exception:
                log.exception("error handling MQTT message on %s", topic)
                continue
            if isinstance(later, asyncio.Future):
                deferred.append(later)
        if qos == 0:
            return
        if not deferred:
            self._ack(mid, qos, session)
            return
        waiting = set(deferred)

        def done(future: asyncio.Future[None]) -> None:
            waiting.discard(future)
            if not waiting:
                self._ack(mid, qos, session)

        for future in deferred:
            future.add_done_callback(done)

    def _handlers_of(self, topic: str) -> list[MessageHandler]:
        """The handlers of the filters that match `topic`, remembered per topic (matching costs more than the
        rest of a message's hand-over), for at most ROUTES_KEPT topics."""
        handlers = self._routes.get(topic)
        if handlers is None:
            handlers = [h for f, h in self._subscriptions.items() if paho.topic_matches_sub(_unshared(f), topic)]
            if len(self._routes) >= ROUTES_KEPT:
                self._routes.clear()
            self._routes[topic] = handlers
        return handlers

    def _ack(self, mid: int, qos: int, session: int) -> None:
        # PUBACK only once the handlers are done (the collector has committed): the broker's in-flight window
        # then holds a backlog back at the broker instead of in this process's memory. A mid of an earlier
        # connection must not be acked: the new session may reuse it for another message.
        if self._paho is not None and session == self._session and self._connected:
            self._paho.ack(mid, qos)

    def _fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(ConnectionLost(why))

    @staticmethod
    def _run_hook(hook: Hook | None) -> None:
        if hook is None:
            return
        try:
            hook()
        except Exception:
            log.exception("error in MQTT connection hook")


def shared(group: str | None, topic_filter: str) -> str:
    """The filter as a shared subscription of `group` (the broker hands each message to one member); as is
    when `group` is None."""
    return topic_filter if group is None else f"{SHARE_PREFIX}{group}/{topic_filter}"


def _unshared(topic_filter: str) -> str:
    """What a filter matches: a shared subscription's messages carry their plain topic."""
    if not topic_filter.startswith(SHARE_PREFIX):
        return topic_filter
    return topic_filter[len(SHARE_PREFIX):].partition("/")[2]


def local_certificates(tls: TlsConfig) -> list[CertInfo]:
    """The client certificate (the first of its file) and the CA certificates, as the files hold them now.

    Raises BrokerError naming the file that cannot be read."""
    found: list[CertInfo] = []
    for path, role in ((tls.cert_file, Role.OWN), (tls.ca_file, Role.CA)):
        if path is None:
            continue
        try:
            certs = inspect_pem(read_small(path, MAX_PEM_BYTES), role)
        except (OSError, ValueError, CertError) as exc:
            raise BrokerError(f"{role.value} certificate {path}: {exc}") from None
        found += certs[:1] if role is Role.OWN else certs
    return found


FileStamps = tuple[tuple[str, int, int], ...]


def file_stamps(tls: TlsConfig) -> FileStamps:
    """(path, mtime, size) of each TLS file; a missing file counts as (path, -1, -1)."""
    stamps = []
    for path in (tls.ca_file, tls.cert_file, tls.key_file):
        if path is not None:
            stamps.append(_stamp(path))
    return tuple(stamps)


def _stamp(path: Path) -> tuple[str, int, int]:
    try:
        st = path.stat()
    except OSError:
        return (str(path), -1, -1)
    return (str(path), st.st_mtime_ns, st.st_size)


def _drop_unsent(client: paho.Client) -> None:
    """Forget messages of an earlier connection that paho would resend first (paho 2.2 internals, pinned <2.3).

    Called in on_connect, before paho's CONNACK handling walks its queue; their futures already failed.
    """
    with client._out_message_mutex:
        if client._out_messages:
            log.debug("dropping %d MQTT messages of the previous connection", len(client._out_messages))
        client._out_messages.clear()
        client._inflight_messages = 0
