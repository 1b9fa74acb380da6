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
  failure, not a success. Publishing while disconnected raises at once instead of queueing inside paho, and
  paho's own queue is bounded: the caller's durable store is the buffer, not paho's memory.
- Subscriptions are kept here and restored on every (re)connect.

Messages in flight when the connection drops are failed here, and dropped from paho's queue at the next
connect (paho would otherwise send them again before anything newer, against the spec for a clean session): a
failed future means "not sent by this client", the caller (the agent's outbox) sends again, in order.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from linewarden.config.base import BrokerConfig
from linewarden.errors import BrokerError

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
        self._subscriptions: dict[str, MessageHandler] = {}
        self.on_connect: Hook | None = None
        self.on_disconnect: Hook | None = None

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def client_id(self) -> str:
        return self._client_id

    def set_will(self, will: Will | None) -> None:
        """Set the Last Will sent with the next CONNECT (call before `start()` to cover the first one)."""
        self._will = will
        if self._paho is not None:
            self._apply_will(self._paho)

    async def start(self) -> None:
        """Begin connecting in the background; returns at once, even when the broker is down."""
        if self._paho is not None:
            return
        self._loop = asyncio.get_running_loop()
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=self._protocol,
            clean_session=True if self._protocol == MQTTProtocolVersion.MQTTv311 else None,
            manual_ack=True,
        )
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.max_queued_messages_set(MAX_QUEUED)
        if self._config.username is not None:
            try:
                password = self._config.password.reveal() if self._config.password is not None else None
            except ValueError as exc:
                raise BrokerError(f"broker password: {exc}") from None
            client.username_pw_set(self._config.username, password)
        tls = self._config.tls
        if tls is not None:
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
                cert_reqs=ssl.CERT_NONE if tls.insecure else ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(tls.insecure)
        self._apply_will(client)
        client.on_connect = self._paho_on_connect
        client.on_disconnect = self._paho_on_disconnect
        client.on_connect_fail = self._paho_on_connect_fail
        client.on_publish = self._paho_on_publish
        client.on_message = self._paho_on_message
        client.connect_async(
            self._config.host,
            self._config.port,
            keepalive=max(1, int(self._config.keepalive.total_seconds())),
            clean_start=True,
        )
        self._paho = client
        client.loop_start()

    async def stop(self) -> None:
        """Disconnect cleanly (no Last Will) and end the network thread."""
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
        if self._paho is None or self._loop is None or not self._connected:
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

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        """Call `handler(topic, payload)` on the event loop for each message; kept across reconnects."""
        self._subscriptions[topic_filter] = handler
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
                self._call_on_loop(self._connect_failed_on_loop, f"refused: {reason}")
                return
            _drop_unsent(client)
            self._session += 1  # in the network thread, before any message of the new session is read
            for topic_filter in list(self._subscriptions):
                client.subscribe(topic_filter, qos=1)
            self._call_on_loop(self._connected_on_loop)
        except Exception:
            log.exception("error in MQTT on_connect")

    def _paho_on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        try:
            self._call_on_loop(self._connect_failed_on_loop, "unreachable")
        except Exception:
            log.exception("error in MQTT on_connect_fail")

    def _paho_on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        try:
            self._call_on_loop(self._disconnected_on_loop, str(reason))
        except Exception:
            log.exception("error in MQTT on_disconnect")

    def _paho_on_publish(self, client: paho.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        try:
            failure = str(reason) if reason.is_failure else None
            self._call_on_loop(self._puback_on_loop, mid, failure)
        except Exception:
            log.exception("error in MQTT on_publish")

    def _paho_on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            self._call_on_loop(
                self._message_on_loop, message.topic, bytes(message.payload), message.mid, message.qos, self._session
            )
        except Exception:
            log.exception("error in MQTT on_message")

    # ------------------------------------------------------------ event loop thread

    def _connected_on_loop(self) -> None:
        if self._paho is None:
            return
        self._connected = True
        self.failed_connects = 0
        log.info("MQTT connected to %s:%s as %s", self._config.host, self._config.port, self._client_id)
        self._run_hook(self.on_connect)

    def _connect_failed_on_loop(self, why: str) -> None:
        self.failed_connects += 1
        level = logging.WARNING if self.failed_connects == 1 else logging.DEBUG
        log.log(level, "MQTT broker %s:%s %s; retrying", self._config.host, self._config.port, why)

    def _disconnected_on_loop(self, reason: str) -> None:
        was_connected, self._connected = self._connected, False
        self._fail_pending(f"connection lost ({reason})")
        if was_connected:
            log.info("MQTT disconnected from %s:%s: %s", self._config.host, self._config.port, reason)
            self._run_hook(self.on_disconnect)

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
        for topic_filter, handler in list(self._subscriptions.items()):
            if paho.topic_matches_sub(topic_filter, topic):
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
                future.set_exception(BrokerError(why))

    @staticmethod
    def _run_hook(hook: Hook | None) -> None:
        if hook is None:
            return
        try:
            hook()
        except Exception:
            log.exception("error in MQTT connection hook")


def _drop_unsent(client: paho.Client) -> None:
    """Forget messages of an earlier connection that paho would resend first (paho 2.2 internals, pinned <2.3).

    Called in on_connect, before paho's CONNACK handling walks its queue; their futures already failed.
    """
    with client._out_message_mutex:
        if client._out_messages:
            log.debug("dropping %d MQTT messages of the previous connection", len(client._out_messages))
        client._out_messages.clear()
        client._inflight_messages = 0
